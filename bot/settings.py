"""Every setting of Sportello, read once from the environment (and `.env`) with pydantic's
`BaseSettings`: one field, one default."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Tuple
from zoneinfo import ZoneInfo

from dotenv import load_dotenv
from pydantic import BaseSettings, Field, ValidationError, root_validator, validator
from pydantic.fields import ModelField

from bot.keys import embedded_secrets

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ("embedded", "production")


class Settings(BaseSettings):
    """Each setting is a field; its environment variable is its name in capitals unless `env`
    says otherwise. A default that depends on another setting (the profile, the var folder) is
    filled by a validator from that setting; an empty variable counts as unset."""

    profile: str = Field("embedded", env="SPORTELLO_PROFILE")
    var_dir: Path = Field(ROOT / "var", env="SPORTELLO_VAR_DIR")
    # The customer history, the desk and the conversation log (default: SQLite under var_dir).
    database_url: str = ""
    # Secrets (bot.keys): in production from the environment only; in the embedded profile the
    # environment's, else generated once under var_dir.
    customer_token_secret: str = ""
    rasa_token: str = ""
    # The action server's bearer token, and the key of one-time-code hashes and socket.io
    # sessions.
    action_server_token: str = ""
    secret_key: str = Field("", env="SPORTELLO_SECRET_KEY")
    rasa_url: str = "http://127.0.0.1:5005"
    action_server_url: str = "http://127.0.0.1:5055/webhook"
    # Where the servers listen: loopback unless configured (a private address when the other
    # processes run on other machines, a public one only behind a load balancer).
    rasa_host: str = "127.0.0.1"
    action_server_host: str = "127.0.0.1"
    desk_host: str = "127.0.0.1"
    site_url: str = "http://127.0.0.1:5007"
    # Origins allowed by CORS on the Rasa server (comma-separated; by default the site's);
    # never "*".
    cors_origins: Tuple[str, ...] = ()
    # A customer verified with a one-time code stays verified this long without writing.
    verification_idle_minutes: int = 30
    # One-time codes: at most this many sent per customer and per destination in an hour (and
    # 3 per conversation): enough for a customer who mistypes, few enough to stop a flood.
    otp_sends_per_hour: int = 5
    # The demo data, desk users and sign-in (default: the embedded profile only; production
    # refuses them).
    demo: Optional[bool] = Field(None, env="SPORTELLO_DEMO")
    otp_ttl_minutes: int = 10
    otp_max_attempts: int = 3
    otp_lock_minutes: int = 15
    payment_base_url: str = "https://pay.lucenordenergia.example/bill/"
    gas_emergency_number: str = "800 900 999"
    # The operator's time zone: calendar days, due dates, the desk's hours (`local_zone()`).
    timezone: str = "Europe/Rome"
    desk_url: str = "http://127.0.0.1:5006"
    desk_cookie_secure: bool = True
    desk_session_hours: int = 12
    # Business hours of the live chat, per day of week, in `timezone` ("mon-fri 08:00-20:00").
    desk_hours: str = "mon-fri 08:00-20:00, sat 09:00-13:00"
    handover_max_wait_seconds: int = 600
    agent_reply_timeout_seconds: int = 180
    agent_max_chats: int = 3
    handover_default_handling_seconds: int = 300
    # Written complaints (ARERA's TIQV, see the README's "Complaint clocks"): the calendar days
    # a reasoned answer may take after the day the complaint arrived, per kind of complaint,
    # and the automatic indemnity owed when it is late (twice the amount beyond twice the
    # deadline, three times beyond three times).
    complaint_answer_days: int = 30
    complaint_billing_correction_days: int = 60
    complaint_double_billing_days: int = 15
    complaint_indemnity_eur: Decimal = Decimal("30")
    # The production profile's PostgreSQL server, for Rasa's databases below.
    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    pg_user: str = "postgres"
    pg_password: str = ""
    rasa_events_db: str = "rasa_events"
    rasa_tracker_db: str = "rasa"
    # The event stream's table (the desk and the conversation log read it; Rasa's SQL event
    # broker writes it in the embedded profile, the log worker's relay from RabbitMQ in
    # production) and where Rasa's SQL tracker store keeps the conversations (erasure and
    # retention delete there too): these URLs when set, else the PostgreSQL databases above in
    # production, else SQLite files under var_dir.
    events_database_url: str = ""
    tracker_database_url: str = ""
    # The production profile's RabbitMQ: Rasa's event broker publishes every event to the fanout
    # exchange; the log worker consumes the durable queue bound to it (bot.event_relay).
    rabbitmq_host: str = "127.0.0.1"
    rabbitmq_port: int = 5672
    rabbitmq_user: str = "guest"
    rabbitmq_password: str = "guest"
    rabbitmq_exchange: str = "sportello-events"
    rabbitmq_queue: str = "sportello-log"
    # The Redis of the lock store (endpoints.production.yml), which also holds the rate limits:
    # `redis_url` when set, else these parts in production; none in the embedded profile.
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_db: int = 0
    redis_url: str = ""
    # socket.io through Redis (python-socketio's AsyncRedisManager), so that any Rasa process
    # can push to any browser: by default the lock store's Redis; set empty for the in-process
    # manager (one Rasa process).
    socketio_redis_url: Optional[str] = None
    socketio_redis_channel: str = "sportello-socketio"  # the Redis pub/sub channel (one per site)
    # The messaging platforms' API base URLs (their secrets are in credentials.yml, from the
    # environment).
    whatsapp_api_url: str = "https://graph.facebook.com/v19.0"
    telegram_api_url: str = "https://api.telegram.org"
    twilio_api_url: str = "https://api.twilio.com"
    messenger_api_url: str = "https://graph.facebook.com/v19.0"
    # Every public webhook: at most `rate_limit_messages` per sender in `rate_limit_window_seconds`
    # (Redis in the production profile, process memory in the embedded one), and request bodies
    # up to `max_request_bytes` (413 beyond; message texts are cut at 2000 characters).
    rate_limit_messages: int = 20
    rate_limit_window_seconds: int = 60
    max_request_bytes: int = 65536
    # The conversation log (bot.analytics): a session with nothing new for this long has ended;
    # conversations older than `retention_days` are deleted by `python -m bot purge` (0: never).
    conversation_idle_minutes: int = 30
    retention_days: int = 365
    # A resolved task is withdrawn when the same customer comes back about the same skill,
    # ticket or bill, on any channel, within this many days (bot.analytics.resolution).
    resolution_recontact_days: int = Field(7, ge=1)
    # One-time codes (bot.notify): "outbox" keeps them in the outbox table (the embedded demo,
    # `python -m bot outbox`); "real" sends e-mails over SMTP and SMS through SMS_PROVIDER (the
    # production default, and the only choice there). No mode writes a code to a log.
    otp_delivery: str = ""
    smtp_host: str = ""
    smtp_security: str = "starttls"  # "starttls", "tls" (implicit) or "none" (localhost only)
    smtp_port: int = 0  # default: 465 when smtp_security is "tls", else 587
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_from: str = ""  # "Luce Nord Energia <no-reply@lucenordenergia.example>"
    smtp_timeout: float = 10.0
    sms_provider: str = "twilio"
    sms_twilio_account_sid: str = ""
    sms_twilio_auth_token: str = ""
    sms_from: str = ""  # E.164 sender number, or a Twilio Messaging Service SID (MG...)

    class Config:
        allow_mutation = False
        frozen = True
        case_sensitive = False

        @classmethod
        def parse_env_var(cls, field_name: str, raw_val: str) -> Any:
            if field_name == "cors_origins":  # comma-separated, not JSON
                return [o.strip().rstrip("/") for o in raw_val.split(",") if o.strip()]
            return cls.json_loads(raw_val)

    @validator("*", pre=True)
    def _empty_is_unset(cls, value: Any, field: ModelField) -> Any:
        if isinstance(value, str):
            if field.name in _STRIPPED:
                value = value.strip()
            if field.name in _LOWERCASE:
                value = value.lower()
            if value == "" and field.name not in _EMPTY_IS_A_VALUE:
                return field.default
        return value

    @validator("profile")
    def _known_profile(cls, value: str) -> str:
        if value not in PROFILES:  # "prod" must not quietly mean the demo
            raise ValueError(f"SPORTELLO_PROFILE={value!r}: use one of {', '.join(PROFILES)}")
        return value

    @validator("complaint_answer_days", "complaint_billing_correction_days",
               "complaint_double_billing_days")
    def _a_deadline_is_days(cls, value: int, field: ModelField) -> int:
        if value < 1:
            raise ValueError(f"{field.name.upper()}: at least 1 day")
        return value

    @validator("complaint_indemnity_eur")
    def _an_amount_in_cents(cls, value: Decimal) -> Decimal:
        if value < 0 or value != value.quantize(Decimal("0.01")):
            raise ValueError("COMPLAINT_INDEMNITY_EUR: euros, at most two decimals, not negative")
        return value

    @root_validator(skip_on_failure=True)
    def _derived(cls, v: dict) -> dict:
        production, var_dir = v["profile"] == "production", v["var_dir"]
        v["database_url"] = v["database_url"] or f"sqlite:///{var_dir / 'sportello.db'}"
        if not production:
            stored = embedded_secrets(var_dir)
            for name, key in _SECRET_FIELDS.items():
                v[name] = v[name] or stored[key]
        v["cors_origins"] = _origins(v["cors_origins"], v["site_url"])
        if v["demo"] is None:
            v["demo"] = not production
        pg = (f"postgresql://{v['pg_user']}"
              f"{':' + v['pg_password'] if v['pg_password'] else ''}"
              f"@{v['pg_host']}:{v['pg_port']}/")
        for url, database, sqlite_file in (("events_database_url", "rasa_events_db",
                                            "rasa-events.db"),
                                           ("tracker_database_url", "rasa_tracker_db",
                                            "rasa-tracker.db")):
            v[url] = v[url] or (pg + v[database] if production
                                else f"sqlite:///{var_dir / sqlite_file}")
        if not v["redis_url"] and production:
            v["redis_url"] = f"redis://{v['redis_host']}:{v['redis_port']}/{v['redis_db']}"
        if v["socketio_redis_url"] is None:
            v["socketio_redis_url"] = v["redis_url"]
        v["otp_delivery"] = v["otp_delivery"] or ("real" if production else "outbox")
        v["smtp_port"] = v["smtp_port"] or (465 if v["smtp_security"] == "tls" else 587)
        return v

    @property
    def outbox_log(self) -> Path:
        return self.var_dir / "outbox.log"


# The secrets' fields and their names in the environment (bot.keys.SECRETS).
_SECRET_FIELDS = {"customer_token_secret": "CUSTOMER_TOKEN_SECRET", "rasa_token": "RASA_TOKEN",
                  "action_server_token": "ACTION_SERVER_TOKEN",
                  "secret_key": "SPORTELLO_SECRET_KEY"}
_STRIPPED = {"smtp_host", "smtp_security", "smtp_from", "sms_provider", "sms_twilio_account_sid",
             "sms_from", "otp_delivery"}
_LOWERCASE = {"smtp_security", "sms_provider", "otp_delivery"}
# Set empty on purpose: no Redis for socket.io (one Rasa process), no live chat hours at all.
_EMPTY_IS_A_VALUE = {"socketio_redis_url", "desk_hours"}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read the environment (and `.env`) once; `reset_settings()` forgets the cached value
    (tests). A setting the environment gets wrong stops the process with its name."""
    load_dotenv(ROOT / ".env", override=False)
    try:
        return Settings()
    except ValidationError as e:
        raise SystemExit(f"Sportello settings: {e}") from None


def _origins(given: tuple, site_url: str) -> tuple:
    """The origins given, by default the demo site's origin and its localhost spelling; "*" is
    refused (it would let any page use a visitor's credentials)."""
    from urllib.parse import urlparse

    if given:
        origins = list(given)
    else:
        u = urlparse(site_url)
        origins = [f"{u.scheme}://{u.netloc}"]
        if u.hostname == "127.0.0.1":
            origins.append(f"{u.scheme}://localhost:{u.port}" if u.port
                           else f"{u.scheme}://localhost")
    return tuple(o for o in origins if o != "*")


def local_zone() -> ZoneInfo:
    """The operator's time zone (`TIMEZONE`, Europe/Rome by default): calendar days, due dates,
    the desk's hours and the dashboard's periods are counted in it."""
    return ZoneInfo(get_settings().timezone)


def reset_settings() -> None:
    get_settings.cache_clear()
