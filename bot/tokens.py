"""Customer tokens: HS256 JWTs signed by the company's site, `sub` = customer code."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import jwt

from bot.crm import validation
from bot.settings import get_settings

CUSTOMER_CODE = re.compile(validation.CUSTOMER_CODE)


def make_customer_token(customer_code: str, minutes: int = 60, secret: str | None = None) -> str:
    now = datetime.now(timezone.utc)
    payload = {"sub": customer_code, "iat": now, "exp": now + timedelta(minutes=minutes)}
    return jwt.encode(payload, secret or get_settings().customer_token_secret, algorithm="HS256")


def customer_from_token(token: object) -> str | None:
    """The customer code of a valid token; None for a missing, invalid or expired one."""
    if not isinstance(token, str) or not token or len(token) > 4096:
        return None
    try:
        claims = jwt.decode(
            token, get_settings().customer_token_secret, algorithms=["HS256"],
            options={"require": ["exp", "sub"]},
        )
    except jwt.PyJWTError:
        return None
    sub = claims.get("sub")
    return sub if isinstance(sub, str) and CUSTOMER_CODE.fullmatch(sub) else None
