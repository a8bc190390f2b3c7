"""Complaint clocks: by when a written complaint must be answered, and what is owed when it is not.

ARERA's rules for energy retailers (the TIQV; the README's "Complaint clocks" cites the text) set
separate standards in calendar days, counted from the day a written complaint arrived: the
reasoned written answer, for every complaint, within `COMPLAINT_ANSWER_DAYS`; and, when a bill
has to be put right, the correction itself within `COMPLAINT_BILLING_CORRECTION_DAYS`
(`COMPLAINT_DOUBLE_BILLING_DAYS` when the customer was billed twice). An answer after its
deadline owes the customer an automatic indemnity: `COMPLAINT_INDEMNITY_EUR`, twice that beyond
twice the deadline, three times beyond three times.

- The clock kept here is the answer's: the same deadline for every complaint, the date the bot
  promises and the console counts. The correction's deadline (`ComplaintClock.correction_due`)
  is shown beside it for the complaints that look like billing disputes; whether and when a
  bill was corrected is not in the data Sportello receives, so that clock is not tracked.
- Whether a complaint looks like a billing dispute (`kind_of`) is read from what the customer
  wrote, once, when the complaint is stored, and kept with it: a double charge ("addebitato due
  volte", "doppia fatturazione", "billed twice") is double billing; a bill or charge said to be
  wrong ("bolletta troppo alta", "conguaglio non dovuto", "the amount is wrong") is a billing
  correction; anything else is a general complaint. A guess from free text: it never moves the
  answer's deadline.
- Days are calendar days in the operator's time zone (`TIMEZONE`, Europe/Rome): a complaint that
  arrived on 1 March with 30 days is answered on time up to 31 March included. The deadline is
  stored as the instant that day ends (`deadline_instant`), so that "answered on time" is one
  comparison, in SQL too.
- Days left: from today to the last day (0 on the last day itself); late once that day is over.
- The indemnity grows with the days from arrival to the answer (or to today while unanswered).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from bot.settings import get_settings, local_zone

GENERAL, BILLING_CORRECTION, DOUBLE_BILLING = "general", "billing_correction", "double_billing"
KINDS = (GENERAL, BILLING_CORRECTION, DOUBLE_BILLING)

# Accents removed and lower case before matching (see `_folded`).
_BILLING = (r"bollett\w*|fattur\w*|addebit\w*|conguagli\w*|importo|importi|bill|bills|billed|"
            r"billing|invoice\w*|charge|charged|charges|amount")
_TWICE = (r"due volte|doppi[oaie]|duplicat\w*|raddoppiat\w*|twice|two times|double|doubled|"
          r"duplicate\w*")
_PAID_TWICE = r"(?:pagat[oaie]|paid|pay)\b.{0,40}\b(?:due volte|twice|two times)"
_WRONG = (r"errat\w*|sbagliat\w*|non dovut\w*|non corrett\w*|troppo|eccessiv\w*|gonfiat\w*|"
          r"esagerat\w*|assurd\w*|contest\w*|rettific\w*|correg\w*|rimbors\w*|piu alt\w*|"
          r"wrong|incorrect|too high|too much|overcharg\w*|not owed|excessive|refund\w*|"
          r"correct\w*|higher than")
DOUBLE_BILLING_WORDS = re.compile(
    rf"\b(?:(?:{_TWICE})\b.{{0,40}}\b(?:{_BILLING})|(?:{_BILLING})\b.{{0,40}}\b(?:{_TWICE})|"
    rf"{_PAID_TWICE})\b")
BILLING_WORDS = re.compile(rf"\b(?:{_BILLING})\b")
WRONG_WORDS = re.compile(rf"\b(?:{_WRONG})\b")
MULTIPLIERS = (1, 2, 3)  # the indemnity beyond 1, 2 and 3 times the deadline


def _folded(text: str) -> str:
    text = unicodedata.normalize("NFKD", (text or "").lower().replace("’", "'"))
    return " ".join("".join(c for c in text if not unicodedata.combining(c)).split())


def kind_of(text: str | None) -> str:
    """The deadline a complaint gets from what the customer wrote (see the module's rules)."""
    words = _folded(text or "")
    if DOUBLE_BILLING_WORDS.search(words):
        return DOUBLE_BILLING
    if BILLING_WORDS.search(words) and WRONG_WORDS.search(words):
        return BILLING_CORRECTION
    return GENERAL


def answer_days() -> int:
    """The calendar days any written complaint may wait for its reasoned answer (settings)."""
    return get_settings().complaint_answer_days


def correction_days(kind: str) -> int | None:
    """The calendar days a bill's correction may take for a complaint of `kind` (settings);
    None for a general complaint."""
    settings = get_settings()
    return {BILLING_CORRECTION: settings.complaint_billing_correction_days,
            DOUBLE_BILLING: settings.complaint_double_billing_days}.get(kind)


def local_day(moment: datetime) -> date:
    """The operator's calendar day of an instant."""
    return moment.astimezone(local_zone()).date()


def last_day(received_at: datetime) -> date:
    """The last day to answer a complaint received at `received_at`."""
    return local_day(received_at) + timedelta(days=answer_days())


def deadline_instant(day: date) -> datetime:
    """The instant `day` ends in the operator's time zone (midnight after it), in UTC: an answer
    before it is on time."""
    return datetime.combine(day + timedelta(days=1), time(0), local_zone()).astimezone(
        timezone.utc)


def day_of_deadline(deadline: datetime) -> date:
    """The last day to answer, from the stored deadline instant (`deadline_instant`)."""
    return local_day(deadline) - timedelta(days=1)


def indemnity(days_taken: int, days_allowed: int, base: Decimal | None = None) -> Decimal:
    """The automatic indemnity for an answer given `days_taken` days after the complaint
    arrived, when `days_allowed` were allowed: nothing on time, `base` up to twice the
    deadline, twice `base` up to three times, three times `base` beyond."""
    base = get_settings().complaint_indemnity_eur if base is None else base
    owed = sum(1 for m in MULTIPLIERS if days_taken > m * days_allowed)
    return (base * owed).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class ComplaintClock:
    """Where a complaint stands against its deadline, on `today`."""

    kind: str
    received_on: date
    last_day: date
    answered_on: date | None
    today: date

    @property
    def days_allowed(self) -> int:
        return (self.last_day - self.received_on).days

    @property
    def answered(self) -> bool:
        return self.answered_on is not None

    @property
    def days_left(self) -> int | None:
        """Days from today to the last day (0 on that day, negative once late); None once
        answered."""
        return None if self.answered else (self.last_day - self.today).days

    @property
    def days_taken(self) -> int:
        """Days from arrival to the answer, or to today while unanswered."""
        return ((self.answered_on or self.today) - self.received_on).days

    @property
    def late(self) -> bool:
        """Answered after the last day, or still unanswered after it."""
        return (self.answered_on or self.today) > self.last_day

    @property
    def on_time(self) -> bool | None:
        """Whether the answer came by the last day; None while unanswered."""
        return None if self.answered_on is None else self.answered_on <= self.last_day

    @property
    def correction_due(self) -> date | None:
        """For a billing dispute, the last day to correct the bill (shown, not tracked)."""
        days = correction_days(self.kind)
        return None if days is None else self.received_on + timedelta(days=days)

    @property
    def indemnity(self) -> Decimal:
        """The indemnity owed for this answer (while unanswered: owed so far; it grows)."""
        return indemnity(self.days_taken, self.days_allowed)


def clock_of(kind: str | None, received_at: datetime, deadline: datetime | None,
             answered_at: datetime | None, today: date) -> ComplaintClock:
    """The clock of a stored complaint: its kind, when it arrived, its deadline instant (the
    answer's deadline from `received_at` when none was stored) and its answer, if any."""
    kind = kind if kind in KINDS else GENERAL
    end = day_of_deadline(deadline) if deadline else last_day(received_at)
    return ComplaintClock(kind, local_day(received_at), end,
                          local_day(answered_at) if answered_at else None, today)
