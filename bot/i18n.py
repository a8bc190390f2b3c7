"""Localised values that fill response variables: dates, money, channel and topic names.

Sentences live in the domain; these are the words and formats put into them.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal

ROME = ZoneInfo("Europe/Rome")
LOCALES = {"it": "it_IT", "en": "en_GB"}

CHANNEL_NAMES = {
    "it": {"web": "sul sito", "whatsapp": "su WhatsApp", "telegram": "su Telegram",
           "messenger": "su Messenger", "phone": "al telefono", "email": "per e-mail",
           "store": "in negozio"},
    "en": {"web": "on our website", "whatsapp": "on WhatsApp", "telegram": "on Telegram",
           "messenger": "on Messenger", "phone": "by phone", "email": "by e-mail",
           "store": "in a store"},
}
TOPIC_NAMES = {
    "it": {"check_bill": "una bolletta", "explain_bill": "l'importo di una bolletta",
           "pay_bill": "il pagamento di una bolletta", "submit_meter_reading": "l'autolettura",
           "report_outage": "un guasto", "ticket_status": "una pratica",
           "activate_ebill": "la bolletta digitale", "update_contact": "i tuoi recapiti",
           "setup_direct_debit": "la domiciliazione", "contract_info": "il tuo contratto",
           "file_complaint": "un reclamo", "request_callback": "una richiamata",
           "move_home": "un trasloco", "request_human": "una richiesta"},
    "en": {"check_bill": "a bill", "explain_bill": "the amount of a bill",
           "pay_bill": "paying a bill", "submit_meter_reading": "a meter reading",
           "report_outage": "a fault", "ticket_status": "a request",
           "activate_ebill": "paperless billing", "update_contact": "your contact details",
           "setup_direct_debit": "direct debit", "contract_info": "your contract",
           "file_complaint": "a complaint", "request_callback": "a callback",
           "move_home": "moving home", "request_human": "a request"},
}
SUPPLY_NAMES = {"it": {"electricity": "luce", "gas": "gas"},
                "en": {"electricity": "electricity", "gas": "gas"}}
STATUS_NAMES = {
    "it": {"open": "aperta", "in_progress": "in lavorazione", "resolved": "risolta",
           "closed": "chiusa"},
    "en": {"open": "open", "in_progress": "in progress", "resolved": "resolved",
           "closed": "closed"},
}
DAY_WORDS = {"it": ("oggi", "ieri"), "en": ("today", "yesterday")}


def _lang(language: str | None) -> str:
    return language if language in LOCALES else "it"


def money(amount: Decimal, language: str | None) -> str:
    return format_currency(amount, "EUR", locale=LOCALES[_lang(language)])


def number(value: Decimal, language: str | None) -> str:
    return format_decimal(value, locale=LOCALES[_lang(language)])


def day(d: date, language: str | None) -> str:
    return format_date(d, format="long", locale=LOCALES[_lang(language)])


def moment(dt: datetime, language: str | None) -> str:
    return format_datetime(dt.astimezone(ROME), format="d MMMM, HH:mm",
                           locale=LOCALES[_lang(language)])


def relative_day(dt: datetime, today: date, language: str | None) -> str:
    lang = _lang(language)
    local = dt.astimezone(ROME).date()
    if local == today:
        return DAY_WORDS[lang][0]
    if (today - local).days == 1:
        return DAY_WORDS[lang][1]
    return ("il " if lang == "it" else "on ") + day(local, lang)


def channel(name: str, language: str | None) -> str:
    return CHANNEL_NAMES[_lang(language)].get(name, name)


def topic(name: str, language: str | None) -> str:
    return TOPIC_NAMES[_lang(language)].get(name, name)


def supply(kind: str, language: str | None) -> str:
    return SUPPLY_NAMES[_lang(language)].get(kind, kind)


def status(name: str, language: str | None) -> str:
    return STATUS_NAMES[_lang(language)].get(name, name)
