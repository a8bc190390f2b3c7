"""Business hours of the live chat, per day of week, in the company's time zone.

The setting (`DESK_HOURS`) reads like a shop sign: ``mon-fri 08:00-20:00, sat 09:00-13:00``.
Days are ``mon tue wed thu fri sat sun``; ranges of days and several slots per day are allowed;
``24:00`` ends a day; an empty setting means the chat is never staffed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import get_day_names

from bot.settings import local_zone

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class HoursError(ValueError):
    pass


@dataclass(frozen=True)
class Slot:
    day: int  # 0 = Monday
    start: int  # minutes from midnight
    end: int


def _minutes(text: str) -> int:
    try:
        hh, mm = text.split(":")
        value = int(hh) * 60 + int(mm)
    except ValueError:
        raise HoursError(f"{text!r} is not a time like 08:30") from None
    if not 0 <= value <= 24 * 60 or int(mm) >= 60:
        raise HoursError(f"{text!r} is not a time of day")
    return value


def parse(spec: str) -> list[Slot]:
    slots: list[Slot] = []
    for part in filter(None, (p.strip() for p in spec.replace(";", ",").split(","))):
        try:
            days, span = part.split()
            first, _, last = days.lower().partition("-")
            start, end = span.split("-")
        except ValueError:
            raise HoursError(f"{part!r}: expected e.g. 'mon-fri 08:00-20:00'") from None
        if first not in DAYS or (last and last not in DAYS):
            raise HoursError(f"{part!r}: days are {', '.join(DAYS)}")
        a, b = DAYS.index(first), DAYS.index(last or first)
        day_range = range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)]
        lo, hi = _minutes(start), _minutes(end)
        if lo >= hi:
            raise HoursError(f"{part!r}: the slot must end after it starts")
        slots += [Slot(d, lo, hi) for d in day_range]
    return slots


def is_open(spec: str, at: datetime, timezone: str | None = None) -> bool:
    """Whether `at` falls in the hours `spec`, read in `timezone` (by default the operator's)."""
    local = at.astimezone(ZoneInfo(timezone) if timezone else local_zone())
    minute = local.hour * 60 + local.minute
    return any(s.day == local.weekday() and s.start <= minute < s.end for s in parse(spec))


def describe(spec: str, language: str) -> str:
    """The hours for a customer, with the day names of their language (Babel's)."""
    locale = "en_GB" if language == "en" else "it_IT"
    names = get_day_names("abbreviated", locale=locale)
    parts = []
    for part in filter(None, (p.strip() for p in spec.replace(";", ",").split(","))):
        days, span = part.split()
        first, _, last = days.lower().partition("-")
        label = names[DAYS.index(first)]
        if last:
            label += "-" + names[DAYS.index(last)]
        parts.append(f"{label} {span}")
    return ", ".join(parts)


def validate(spec: str) -> None:
    parse(spec)


__all__ = ["HoursError", "describe", "is_open", "parse", "validate"]
