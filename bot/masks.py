"""Personal values shown in part (replies, the agent's screen, delivery errors): enough for the
customer to recognise their own contact, never enough to read someone else's."""

from __future__ import annotations


def mask_email(value: str | None) -> str:
    if not value or "@" not in value:
        return ""
    local, domain = value.split("@", 1)
    return f"{local[0]}***@{domain}"


def mask_phone(value: str | None) -> str:
    if not value:
        return ""
    return f"{value[:3]}******{value[-3:]}" if len(value) > 6 else "***"


def mask_iban(value: str | None) -> str:
    if not value:
        return ""
    return f"{value[:4]} **** **** {value[-4:]}"
