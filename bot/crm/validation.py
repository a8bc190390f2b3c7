"""Validation and normalisation of what customers type: e-mail, phone, IBAN, meter readings."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

import phonenumbers
from stdnum import iban as stdnum_iban

# A customer code: "C" and 7 digits (the same everywhere: what customers type, the import files,
# the tokens, the log's redaction and search).
CUSTOMER_CODE = r"C\d{7}"
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def is_valid_email(value: str) -> bool:
    return bool(value) and len(value) <= 254 and bool(_EMAIL.fullmatch(value.strip()))


def normalise_phone(value: str, region: str = "IT") -> str | None:
    """The phone number in E.164 (+393331234567), or None when it is not a valid number."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_iban(value: str) -> str | None:
    """The compact IBAN when its checksum and format are valid, else None."""
    compact = stdnum_iban.compact(value or "")
    return compact if stdnum_iban.is_valid(compact) else None


def parse_reading(value: str) -> Decimal | None:
    """A meter reading as typed in Italy or England: "12345", "4821,5", "12.345,5", "4821.5"."""
    text = (value or "").strip().replace(" ", "")
    if not text or not re.fullmatch(r"[\d.,]+", text):
        return None
    if "," in text:
        text = text.replace(".", "").replace(",", ".")
    elif text.count(".") > 1 or re.fullmatch(r"\d{1,3}(\.\d{3})+", text):
        text = text.replace(".", "")  # thousands separators: 12.345
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number >= 0 else None
