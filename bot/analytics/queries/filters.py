"""What the CX lead filters the conversation log on, and the one set of rules for it.

`Filters` is the filter model of the review console's list and exports (`bot.desk.console`) and
of the KPI dashboard (`bot.desk.dashboard`, through `bot.analytics.kpis.check_filters`): a value
is read from the query string by `Filters.from_args`, which refuses a bad one with a
`ValueError` naming it (the desk answers 400 with that message). A channel, language, persona,
stage, outcome, resolution or silent failure must be one of the known values (`options()`, case
ignored); dates are Europe/Rome calendar days written YYYY-MM-DD.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import date
from functools import lru_cache
from typing import Any, Callable, Mapping

from bot.analytics.models import (
    FAILURES,
    OUTCOMES,
    PREDEFINED_TAGS,
    STAGE_LABELS,
    STAGES,
    TASK_OUTCOMES,
)
from bot.channels import LOGGED
from bot.crm import validation
from bot.crm.models import PERSONAS
from bot.language import LANGUAGES
from bot.settings import ROOT

SORT_KEYS = ("started_at", "turns", "fallbacks", "csat", "outcome", "channel")
MAX_TAG = 40
MAX_QUERY = 200
CUSTOMER_CODE = re.compile(validation.CUSTOMER_CODE)
# The failure filter: one kind of silent failure, or any of them.
ANY_FAILURE = "any"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@lru_cache(maxsize=1)
def domain_intents() -> tuple[str, ...]:
    """The intents of the Rasa domain (domain/*.yml), sorted."""
    import yaml

    names: set[str] = set()
    for path in sorted((ROOT / "domain").glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for item in data.get("intents") or []:
            names.add(item if isinstance(item, str) else next(iter(item)))
    return tuple(sorted(names))


# ---- the rules, one function a kind of value (ValueError with the message for the user) ----


def parse_date(name: str, raw: str) -> date:
    """A calendar day written YYYY-MM-DD."""
    try:
        if len(raw) != 10:
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{name}: a date as YYYY-MM-DD, got {raw[:40]!r}") from None


def one_of(values: Callable[[], tuple[str, ...]]) -> Callable[[str, str], str]:
    """A rule: one of `values()`, case ignored."""
    def rule(name: str, raw: str) -> str:
        allowed = values()
        value = raw.lower() if name != "intent" else raw
        if value not in allowed:
            raise ValueError(f"{name}: one of {', '.join(allowed)}; got {raw[:40]!r}")
        return value
    return rule


def _csat(name: str, raw: str) -> int:
    if raw.isdigit() and 1 <= int(raw) <= 5:
        return int(raw)
    raise ValueError(f"{name}: a rating from 1 to 5, got {raw[:40]!r}")


def _text(limit: int) -> Callable[[str, str], str]:
    def rule(name: str, raw: str) -> str:
        if len(raw) > limit:
            raise ValueError(f"{name}: at most {limit} characters")
        return raw
    return rule


def _yes_no(name: str, raw: str) -> bool:
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ValueError(f"{name}: yes or no, got {raw[:40]!r}")


def _customer_code(name: str, raw: str) -> str:
    if CUSTOMER_CODE.fullmatch(raw.upper()):
        return raw.upper()
    raise ValueError(f"{name}: C followed by 7 digits, got {raw[:40]!r}")


RULES: dict[str, Callable[[str, str], Any]] = {
    "date_from": parse_date,
    "date_to": parse_date,
    "channel": one_of(lambda: LOGGED),
    "language": one_of(lambda: LANGUAGES),
    "persona": one_of(lambda: PERSONAS),
    "intent": one_of(domain_intents),
    "stage": one_of(lambda: STAGES),
    "outcome": one_of(lambda: OUTCOMES),
    "csat": _csat,
    "tag": _text(MAX_TAG),
    "reviewed": _yes_no,
    "customer_code": _customer_code,
    "q": _text(MAX_QUERY),
    "resolution": one_of(lambda: TASK_OUTCOMES),
    "failure": one_of(lambda: FAILURES + (ANY_FAILURE,)),
}


@dataclass
class Filters:
    """What the CX lead filters the list on; every field is optional (None: no filter)."""

    date_from: date | None = None  # Conversation.started_at, Europe/Rome days, inclusive
    date_to: date | None = None
    channel: str | None = None
    language: str | None = None
    persona: str | None = None
    intent: str | None = None  # any of the conversation's intents
    stage: str | None = None  # any of the conversation's journey stages
    outcome: str | None = None
    csat: int | None = None  # exact rating 1-5
    tag: str | None = None
    reviewed: bool | None = None
    customer_code: str | None = None
    q: str | None = None  # full-text search in the messages
    resolution: str | None = None  # the conversation's resolution (from its tasks)
    failure: str | None = None  # a line flagged with that silent failure ("any": any kind)

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> "Filters":
        """From query-string values (empty means no filter; other names are not read);
        ValueError names every bad one."""
        problems: list[str] = []
        values: dict[str, Any] = {}
        for name, rule in RULES.items():
            raw = args.get(name)
            if isinstance(raw, (list, tuple)):  # Sanic's request.args
                raw = raw[0] if raw else None
            raw = (str(raw) if raw is not None else "").strip()
            if not raw:
                continue
            try:
                values[name] = rule(name, raw)
            except ValueError as exc:
                problems.append(str(exc))
        filters = cls(**values)
        if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
            problems.append("date_from: must not be after date_to")
        if problems:
            raise ValueError("; ".join(problems))
        return filters

    def to_args(self) -> dict[str, str]:
        """The query-string values that give these filters back (`from_args`)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, bool):
                value = "yes" if value else "no"
            out[f.name] = value.isoformat() if isinstance(value, date) else str(value)
        return out


def parse_sort(sort: str | None) -> tuple[str, bool]:
    """("started_at", True) for "-started_at"; ValueError for an unknown key."""
    sort = (sort or "-started_at").strip()
    descending = sort.startswith("-")
    key = sort[1:] if descending else sort
    if key not in SORT_KEYS:
        raise ValueError(f"sort: one of {', '.join(SORT_KEYS)} (prefix - for descending); "
                         f"got {sort!r}")
    return key, descending


def options() -> dict:
    """The values of the filter form and of the tag and annotation controls."""
    return {"channels": list(LOGGED), "languages": list(LANGUAGES), "personas": list(PERSONAS),
            "intents": list(domain_intents()), "outcomes": list(OUTCOMES),
            "stages": [{"value": s, "label": STAGE_LABELS[s]} for s in STAGES],
            "tags": list(PREDEFINED_TAGS), "sort_keys": list(SORT_KEYS),
            "resolutions": list(TASK_OUTCOMES), "failures": list(FAILURES) + [ANY_FAILURE]}
