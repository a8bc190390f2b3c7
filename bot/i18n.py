"""Localised values that fill response variables: words from the domain, formats from Babel.

Sentences and words live in the domain. The words put into sentences (channel, topic, supply
and status names, "today", ...) are one response each in `domain/vocabulary.yml`, named
`utter_vocab_<group>_<key>` and listed in VOCABULARY below; actions resolve them from the
domain rasa-sdk passes to `Action.run` with `word`. Dates and money are formats (Babel).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Dict, Mapping, Optional

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal

from bot.settings import local_zone

LOCALES = {"it": "it_IT", "en": "en_GB"}

# Every vocabulary entry: group -> keys. The single list the resolver accepts and the tests
# check against domain/vocabulary.yml (and against `rasa data validate`).
VOCABULARY: Dict[str, tuple] = {
    "channel": ("web", "whatsapp", "telegram", "messenger", "phone", "email", "store"),
    "topic": ("check_bill", "explain_bill", "pay_bill", "submit_meter_reading", "report_outage",
              "ticket_status", "activate_ebill", "update_contact", "setup_direct_debit",
              "contract_info", "file_complaint", "request_callback", "move_home",
              "request_human", "other"),
    "supply": ("electricity", "gas"),
    "status": ("open", "in_progress", "resolved", "closed"),
    "day": ("today", "yesterday", "on"),
    "due": ("paid", "in", "overdue"),
    # an unanswered complaint: its expected date, then its deadline (complaint_clock)
    "answer": ("expected", "in", "today", "late"),
}
# Unknown keys of these groups are said with this key (a topic the history may hold).
FALLBACK_KEYS = {"topic": "other"}

_VARIABLE = re.compile(r"\{(\w+)\}")


def response_name(group: str, key: str) -> str:
    return f"utter_vocab_{group}_{key}"


def vocabulary_responses() -> set[str]:
    return {response_name(group, key) for group, keys in VOCABULARY.items() for key in keys}


def _lang(language: str | None) -> str:
    return language if language in LOCALES else "it"


def resolve(domain: Mapping[str, Any], response: str, language: str | None,
            **values: Any) -> str:
    """The text of a domain response in `language`: the variation whose conditions are all on
    the `language` slot and match it, otherwise the default (unconditional) variation; its
    `{variables}` filled from `values`."""
    variations = (domain.get("responses") or {}).get(response)
    if not variations:
        raise KeyError(f"response {response!r} is not in the domain")
    lang = _lang(language)
    default: Optional[dict] = None
    chosen: Optional[dict] = None
    for variation in variations:
        condition = variation.get("condition") or []
        if not condition:
            default = default or variation
        elif all(c.get("type") == "slot" and c.get("name") == "language" and c.get("value") == lang
                 for c in condition):
            chosen = chosen or variation
    picked = chosen or default
    if picked is None:
        raise KeyError(f"response {response!r} has no variation for {lang!r} and no default")
    text = picked.get("text") or ""
    return _VARIABLE.sub(lambda m: str(values.get(m.group(1), m.group(0))), text)


def word(domain: Mapping[str, Any], group: str, key: str, language: str | None,
         **values: Any) -> str:
    """A vocabulary entry of `group` (see VOCABULARY) in `language`."""
    keys = VOCABULARY[group]
    if key not in keys:
        if group not in FALLBACK_KEYS:
            raise KeyError(f"{key!r} is not in the {group!r} vocabulary")
        key = FALLBACK_KEYS[group]
    return resolve(domain, response_name(group, key), language, **values)


def money(amount: Decimal, language: str | None) -> str:
    return format_currency(amount, "EUR", locale=LOCALES[_lang(language)])


def number(value: Decimal, language: str | None) -> str:
    return format_decimal(value, locale=LOCALES[_lang(language)])


def percent(value: Decimal | float | int, language: str | None) -> str:
    """A percentage as the customer's locale writes it, without the sign (the sentence has it):
    at most one decimal, none when it is whole ("94", not "94.0"; "12,5" in Italian, "12.5" in
    English). Always a string: a Decimal sent to Rasa as a response variable travels as a JSON
    float and reaches the customer as "94.0"."""
    rounded = Decimal(str(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return format_decimal(rounded, format="#,##0.#", locale=LOCALES[_lang(language)])


def month_name(month: int, language: str | None) -> str:
    """The name of a month (1-12) as said in a sentence: "ottobre", "October"."""
    return format_date(date(2000, month, 1), format="LLLL", locale=LOCALES[_lang(language)])


def month_year(year: int, month: int, language: str | None) -> str:
    """A month of a year, as bills are named: "ottobre 2025", "October 2025"."""
    return format_date(date(year, month, 1), format="LLLL yyyy", locale=LOCALES[_lang(language)])


def day(d: date, language: str | None) -> str:
    return format_date(d, format="long", locale=LOCALES[_lang(language)])


def moment(dt: datetime, language: str | None) -> str:
    return format_datetime(dt.astimezone(local_zone()), format="d MMMM, HH:mm",
                           locale=LOCALES[_lang(language)])


def today() -> date:
    """Today for the company (Italian time), the day due dates are counted from."""
    return datetime.now(local_zone()).date()


def relative_day(domain: Mapping[str, Any], dt: datetime, today: date,
                 language: str | None) -> str:
    local = dt.astimezone(local_zone()).date()
    if local == today:
        return word(domain, "day", "today", language)
    if (today - local).days == 1:
        return word(domain, "day", "yesterday", language)
    return word(domain, "day", "on", language, date=day(local, language))


def channel(domain: Mapping[str, Any], name: str, language: str | None) -> str:
    return word(domain, "channel", name, language)


def topic(domain: Mapping[str, Any], name: str, language: str | None) -> str:
    return word(domain, "topic", name, language)


def supply(domain: Mapping[str, Any], kind: str, language: str | None) -> str:
    return word(domain, "supply", kind, language)


def status(domain: Mapping[str, Any], name: str, language: str | None) -> str:
    return word(domain, "status", name, language)


def days_until(due: date, today: date) -> int:
    """Days left to a due date (0 on the day itself); negative when it has passed."""
    return (due - today).days


def due_note(domain: Mapping[str, Any], due: date, paid: bool, today: date,
             language: str | None) -> str:
    """Where a bill stands: paid, due in N days, or overdue by N days (with its due date)."""
    if paid:
        return word(domain, "due", "paid", language, due_date=day(due, language))
    left = days_until(due, today)
    if left >= 0:
        return word(domain, "due", "in", language, due_date=day(due, language), days=left)
    return word(domain, "due", "overdue", language, due_date=day(due, language), days=-left)


def answer_note(domain: Mapping[str, Any], last_day: date, days_left: int, indemnity: Decimal,
                language: str | None, expected: date | None = None) -> str:
    """Where an unanswered complaint stands against its deadline (bot.crm.complaint_clock): the
    date and the days left, the last day itself, or late with the indemnity owed so far. The
    date the company expects to answer (`expected`, the ticket's ETA) comes first when it is
    within the deadline: the customer learns both when to expect the answer and their right."""
    answer_by = day(last_day, language)
    if days_left < 0:
        return word(domain, "answer", "late", language, answer_by=answer_by,
                    indemnity=money(indemnity, language))
    if days_left == 0:
        note = word(domain, "answer", "today", language, answer_by=answer_by)
    else:
        note = word(domain, "answer", "in", language, answer_by=answer_by, days=days_left)
    if expected is not None and expected <= last_day:
        note = word(domain, "answer", "expected", language, eta=day(expected, language),
                    deadline=note)
    return note
