"""Every setting of Sportello, read once from the environment (and `.env`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from dotenv import load_dotenv

ROOT = Path(__file__).resolve().parent.parent


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
    extra: dict = field(default_factory=dict)

    @property
    def outbox_log(self) -> Path:
        return self.var_dir / "outbox.log"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read the environment once; `reset_settings()` forgets the cached value (tests)."""
    load_dotenv(ROOT / ".env", override=False)
    profile = os.environ.get("SPORTELLO_PROFILE", "embedded")
    var_dir = Path(os.environ.get("SPORTELLO_VAR_DIR", ROOT / "var"))
    default_db = f"sqlite:///{var_dir / 'sportello.db'}"
    return Settings(
        profile=profile,
        database_url=os.environ.get("DATABASE_URL", default_db),
        var_dir=var_dir,
        customer_token_secret=os.environ.get(
            "CUSTOMER_TOKEN_SECRET", "dev-only-customer-token-secret-change-me"
        ),
        rasa_url=os.environ.get("RASA_URL", "http://127.0.0.1:5005"),
        action_server_url=os.environ.get(
            "ACTION_SERVER_URL", "http://127.0.0.1:5055/webhook"
        ),
        rasa_token=os.environ.get("RASA_TOKEN", "dev-only-rasa-token"),
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
        site_url=os.environ.get("SITE_URL", "http://127.0.0.1:5007"),
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
    )


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
