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
    )


def reset_settings() -> None:
    get_settings.cache_clear()
