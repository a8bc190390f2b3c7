"""Every setting of Sportello, read once from the environment (and `.env`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from dotenv import load_dotenv

from bot.keys import SECRETS, embedded_secrets

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ("embedded", "production")


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    profile: str
    database_url: str
    var_dir: Path
    customer_token_secret: str
    rasa_url: str
    action_server_url: str
    rasa_token: str
    # The action server's bearer token, and the key of one-time-code hashes and socket.io
    # sessions (bot.keys: from the environment; generated once in the embedded profile).
    action_server_token: str = ""
    secret_key: str = ""
    # Where the servers listen: loopback unless configured (a private address when the other
    # processes run on other machines, a public one only behind a load balancer).
    rasa_host: str = "127.0.0.1"
    action_server_host: str = "127.0.0.1"
    # Origins allowed by CORS on the Rasa server (the site's); never "*".
    cors_origins: tuple = ()
    # A customer verified with a one-time code stays verified this long without writing.
    verification_idle_minutes: int = 30
    # One-time codes: at most this many sent per customer and per destination in an hour (and
    # 3 per conversation): enough for a customer who mistypes, few enough to stop a flood.
    otp_sends_per_hour: int = 5
    # The demo data, desk users and sign-in (embedded profile only; production refuses them).
    demo: bool = True
    otp_ttl_minutes: int = 10
    otp_max_attempts: int = 3
    otp_lock_minutes: int = 15
    low_confidence: float = 0.55
    payment_base_url: str = "https://pay.lucenordenergia.example/bill/"
    gas_emergency_number: str = "800 900 999"
    timezone: str = "Europe/Rome"
    desk_url: str = "http://127.0.0.1:5006"
    desk_cookie_secure: bool = True
    desk_session_hours: int = 12
    # Business hours of the live chat, per day of week, Europe/Rome ("mon-fri 08:00-20:00, ...").
    desk_hours: str = "mon-fri 08:00-20:00, sat 09:00-13:00"
    handover_max_wait_seconds: int = 600
    agent_reply_timeout_seconds: int = 180
    agent_max_chats: int = 3
    handover_default_handling_seconds: int = 300
    events_database_url: str = ""
    tracker_database_url: str = ""  # Rasa's SQL tracker store (endpoints*.yml)
    # socket.io through Redis (python-socketio's AsyncRedisManager), so that any Rasa process
    # can push to any browser; empty: the in-process manager (one Rasa process).
    socketio_redis_url: str = ""
    socketio_redis_channel: str = "sportello-socketio"  # the Redis pub/sub channel (one per site)
    site_url: str = "http://127.0.0.1:5007"
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
    redis_url: str = ""
    # The conversation log (bot.analytics): a session with nothing new for this long has ended;
    # conversations older than `retention_days` are deleted by `python -m bot purge` (0: never).
    conversation_idle_minutes: int = 30
    retention_days: int = 365
    # One-time codes (bot.notify): "outbox" keeps them in the outbox table (the embedded demo,
    # `python -m bot outbox`); "real" sends e-mails over SMTP and SMS through SMS_PROVIDER (the
    # production default, and the only choice there). No mode writes a code to a log.
    otp_delivery: str = "outbox"
    smtp_host: str = ""
    smtp_port: int = 587  # 465 when smtp_security is "tls"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_security: str = "starttls"  # "starttls", "tls" (implicit) or "none" (localhost only)
    smtp_from: str = ""  # "Luce Nord Energia <no-reply@lucenordenergia.example>"
    smtp_timeout: float = 10.0
    sms_provider: str = "twilio"
    sms_twilio_account_sid: str = ""
    sms_twilio_auth_token: str = ""
    sms_from: str = ""  # E.164 sender number, or a Twilio Messaging Service SID (MG...)
    extra: dict = field(default_factory=dict)

    @property
    def outbox_log(self) -> Path:
        return self.var_dir / "outbox.log"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read the environment once; `reset_settings()` forgets the cached value (tests)."""
    load_dotenv(ROOT / ".env", override=False)
    profile = os.environ.get("SPORTELLO_PROFILE") or "embedded"
    if profile not in PROFILES:  # "prod" must not quietly mean the demo
        raise SystemExit(f"SPORTELLO_PROFILE={profile!r}: use one of {', '.join(PROFILES)}")
    var_dir = Path(os.environ.get("SPORTELLO_VAR_DIR", ROOT / "var"))
    default_db = f"sqlite:///{var_dir / 'sportello.db'}"
    keys = (embedded_secrets(var_dir) if profile != "production"
            else {name: os.environ.get(name, "") for name in SECRETS})
    site_url = os.environ.get("SITE_URL", "http://127.0.0.1:5007")
    return Settings(
        profile=profile,
        database_url=os.environ.get("DATABASE_URL", default_db),
        var_dir=var_dir,
        customer_token_secret=keys["CUSTOMER_TOKEN_SECRET"],
        rasa_url=os.environ.get("RASA_URL", "http://127.0.0.1:5005"),
        action_server_url=os.environ.get(
            "ACTION_SERVER_URL", "http://127.0.0.1:5055/webhook"
        ),
        rasa_token=keys["RASA_TOKEN"],
        action_server_token=keys["ACTION_SERVER_TOKEN"],
        secret_key=keys["SPORTELLO_SECRET_KEY"],
        rasa_host=os.environ.get("RASA_HOST", "127.0.0.1"),
        action_server_host=os.environ.get("ACTION_SERVER_HOST", "127.0.0.1"),
        cors_origins=_origins(os.environ.get("CORS_ORIGINS"), site_url),
        verification_idle_minutes=int(os.environ.get("VERIFICATION_IDLE_MINUTES", "30")),
        otp_sends_per_hour=int(os.environ.get("OTP_SENDS_PER_HOUR", "5")),
        demo=_bool(os.environ.get("SPORTELLO_DEMO"), profile != "production"),
        otp_ttl_minutes=int(os.environ.get("OTP_TTL_MINUTES", "10")),
        otp_max_attempts=int(os.environ.get("OTP_MAX_ATTEMPTS", "3")),
        otp_lock_minutes=int(os.environ.get("OTP_LOCK_MINUTES", "15")),
        low_confidence=float(os.environ.get("NLU_LOW_CONFIDENCE", "0.55")),
        payment_base_url=os.environ.get(
            "PAYMENT_BASE_URL", "https://pay.lucenordenergia.example/bill/"
        ),
        gas_emergency_number=os.environ.get("GAS_EMERGENCY_NUMBER", "800 900 999"),
        desk_url=os.environ.get("DESK_URL", "http://127.0.0.1:5006"),
        desk_cookie_secure=_bool(os.environ.get("DESK_COOKIE_SECURE"), True),
        desk_session_hours=int(os.environ.get("DESK_SESSION_HOURS", "12")),
        desk_hours=os.environ.get("DESK_HOURS", "mon-fri 08:00-20:00, sat 09:00-13:00"),
        handover_max_wait_seconds=int(os.environ.get("HANDOVER_MAX_WAIT_SECONDS", "600")),
        agent_reply_timeout_seconds=int(os.environ.get("AGENT_REPLY_TIMEOUT_SECONDS", "180")),
        agent_max_chats=int(os.environ.get("AGENT_MAX_CHATS", "3")),
        handover_default_handling_seconds=int(
            os.environ.get("HANDOVER_DEFAULT_HANDLING_SECONDS", "300")),
        events_database_url=_events_url(profile, var_dir),
        tracker_database_url=_tracker_url(profile, var_dir),
        socketio_redis_url=_socketio_redis_url(profile),
        socketio_redis_channel=os.environ.get("SOCKETIO_REDIS_CHANNEL", "sportello-socketio"),
        site_url=site_url,
        whatsapp_api_url=os.environ.get("WHATSAPP_API_URL") or "https://graph.facebook.com/v19.0",
        telegram_api_url=os.environ.get("TELEGRAM_API_URL") or "https://api.telegram.org",
        twilio_api_url=os.environ.get("TWILIO_API_URL") or "https://api.twilio.com",
        messenger_api_url=os.environ.get("MESSENGER_API_URL") or "https://graph.facebook.com/v19.0",
        rate_limit_messages=int(os.environ.get("RATE_LIMIT_MESSAGES", "20")),
        rate_limit_window_seconds=int(os.environ.get("RATE_LIMIT_WINDOW_SECONDS", "60")),
        max_request_bytes=int(os.environ.get("MAX_REQUEST_BYTES", "65536")),
        redis_url=_redis_url(profile),
        conversation_idle_minutes=int(os.environ.get("CONVERSATION_IDLE_MINUTES", "30")),
        retention_days=int(os.environ.get("RETENTION_DAYS", "365")),
        otp_delivery=(os.environ.get("OTP_DELIVERY")
                      or ("real" if profile == "production" else "outbox")).strip().lower(),
        smtp_host=os.environ.get("SMTP_HOST", "").strip(),
        smtp_port=int(os.environ.get("SMTP_PORT") or (
            "465" if os.environ.get("SMTP_SECURITY", "").strip().lower() == "tls" else "587")),
        smtp_username=os.environ.get("SMTP_USERNAME", ""),
        smtp_password=os.environ.get("SMTP_PASSWORD", ""),
        smtp_security=(os.environ.get("SMTP_SECURITY") or "starttls").strip().lower(),
        smtp_from=os.environ.get("SMTP_FROM", "").strip(),
        smtp_timeout=float(os.environ.get("SMTP_TIMEOUT") or "10"),
        sms_provider=(os.environ.get("SMS_PROVIDER") or "twilio").strip().lower(),
        sms_twilio_account_sid=os.environ.get("SMS_TWILIO_ACCOUNT_SID", "").strip(),
        sms_twilio_auth_token=os.environ.get("SMS_TWILIO_AUTH_TOKEN", ""),
        sms_from=os.environ.get("SMS_FROM", "").strip(),
    )


def _origins(value: str | None, site_url: str) -> tuple:
    """`CORS_ORIGINS` (comma-separated), by default the demo site's origin and its localhost
    spelling; "*" is refused (it would let any page use a visitor's credentials)."""
    from urllib.parse import urlparse

    if value:
        origins = [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
    else:
        u = urlparse(site_url)
        origins = [f"{u.scheme}://{u.netloc}"]
        if u.hostname == "127.0.0.1":
            origins.append(f"{u.scheme}://localhost:{u.port}" if u.port
                           else f"{u.scheme}://localhost")
    return tuple(o for o in origins if o != "*")


def _redis_url(profile: str) -> str:
    """Production: the Redis of the lock store (endpoints.production.yml, `REDIS_HOST`,
    `REDIS_PORT`, `REDIS_DB`), which also holds the rate limits. Embedded: none."""
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    if profile != "production":
        return ""
    return (f"redis://{os.environ.get('REDIS_HOST', '127.0.0.1')}:"
            f"{os.environ.get('REDIS_PORT', '6379')}/{os.environ.get('REDIS_DB', '0')}")


def _socketio_redis_url(profile: str) -> str:
    """`SOCKETIO_REDIS_URL`; in the production profile, by default, the lock store's Redis."""
    if "SOCKETIO_REDIS_URL" in os.environ:
        return os.environ["SOCKETIO_REDIS_URL"]
    return _redis_url(profile)


def _rasa_db_url(profile: str, var_dir: Path, override: str, pg_database: str,
                 pg_default: str, sqlite_file: str) -> str:
    """A database of Rasa's (endpoints*.yml): `override` when set; the production profile's
    PostgreSQL database named by `pg_database` (`PG_HOST`, `PG_PORT`, `PG_USER`,
    `PG_PASSWORD`); otherwise a SQLite file under the var folder."""
    if os.environ.get(override):
        return os.environ[override]
    if profile == "production":
        user = os.environ.get("PG_USER", "postgres")
        password = os.environ.get("PG_PASSWORD", "")
        auth = f"{user}:{password}" if password else user
        return (f"postgresql://{auth}@{os.environ.get('PG_HOST', '127.0.0.1')}:"
                f"{os.environ.get('PG_PORT', '5432')}/{os.environ.get(pg_database, pg_default)}")
    return f"sqlite:///{var_dir / sqlite_file}"


def _events_url(profile: str, var_dir: Path) -> str:
    """Where Rasa's SQL event broker writes: the desk and the conversation log read the event
    stream from there."""
    return _rasa_db_url(profile, var_dir, "EVENTS_DATABASE_URL", "RASA_EVENTS_DB", "rasa_events",
                        "rasa-events.db")


def _tracker_url(profile: str, var_dir: Path) -> str:
    """Where Rasa's SQL tracker store keeps the conversations: erasure and retention delete
    there too."""
    return _rasa_db_url(profile, var_dir, "TRACKER_DATABASE_URL", "RASA_TRACKER_DB", "rasa",
                        "rasa-tracker.db")


def reset_settings() -> None:
    get_settings.cache_clear()
