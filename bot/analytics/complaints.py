"""Complaints against their regulatory deadlines (`bot.crm.complaint_clock`), for CX leads: the
console's list of the complaints waiting for an answer, the most urgent first, and the
dashboard's "answered on time".

Definitions:

- a complaint is a ticket of kind `complaint`; it is **answered** from the first time its status
  became resolved or closed (`answered_at`), and **waiting** while it is open or in progress
  without an answer;
- its **deadline** is the last calendar day (Europe/Rome) of the days allowed for a reasoned
  answer (the same for every complaint), counted from the day it arrived; a complaint that
  looks like a billing dispute also shows the last day to correct the bill (`correction_due`,
  not tracked); **days left** = last day - today (0 on the last day); it is **late**
  once the last day is over (days left < 0);
- the **indemnity** of a late complaint is the automatic indemnity for the days it took (to the
  answer, or to today while waiting: then it is what is owed so far, and it grows);
- **answered in the period**: the complaints whose answer fell on a day of the period (Europe/
  Rome days, both ends included); **answered on time**: those answered before their deadline
  ended; **on-time rate** = answered on time / answered in the period; **indemnities** = the sum
  owed for the late answers of the period.

Counts are SQL aggregates; only the late answers of a period are read one by one (each one's
indemnity depends on how late it was).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from bot.analytics.ingest import known_for
from bot.analytics.kpis import previous_period, utc_bounds
from bot.analytics.queries.listing import MAX_PER_PAGE, Page
from bot.analytics.redact import redact
from bot.crm import models as m
from bot.crm.complaint_clock import ComplaintClock, clock_of
from bot.crm.service import OPEN_TICKET_STATUSES

_ZERO = Decimal("0.00")
SUBJECT_CHARS = 120  # what the console shows of a complaint


def _waiting() -> list:
    T = m.Ticket
    return [T.kind == "complaint", T.answered_at.is_(None), T.status.in_(OPEN_TICKET_STATUSES)]


def _clock(ticket: m.Ticket, today: date) -> ComplaintClock:
    return clock_of(ticket.complaint_kind, ticket.opened_at, ticket.answer_due_at,
                    ticket.answered_at, today)


def masked_subject(ticket: m.Ticket, customer: m.Customer) -> str:
    """What the customer complained about, masked like the log, then cut to SUBJECT_CHARS: the
    whole description is masked first, since a value cut in half no longer looks like what it
    is (a stored subject already cut loses its last, possibly partial, word)."""
    text = ticket.description or ticket.subject or ""
    if not ticket.description and len(text) >= SUBJECT_CHARS:
        text = text.rsplit(None, 1)[0]
    masked = redact(text, known_for(customer))
    if len(masked) > SUBJECT_CHARS:
        masked = masked[:SUBJECT_CHARS].rsplit(None, 1)[0] + "…"
    return masked


def _row(ticket: m.Ticket, customer: m.Customer, today: date) -> dict:
    """One waiting complaint as the console shows it; its subject masked like the log."""
    clock = _clock(ticket, today)
    return {
        "ticket_id": ticket.ticket_id, "customer_code": customer.customer_code,
        "persona": customer.persona, "channel": ticket.channel, "status": ticket.status,
        "subject": masked_subject(ticket, customer),
        "kind": clock.kind, "received_on": clock.received_on.isoformat(),
        "last_day": clock.last_day.isoformat(), "days_allowed": clock.days_allowed,
        "correction_due": clock.correction_due.isoformat() if clock.correction_due else None,
        "days_left": clock.days_left, "late": clock.late,
        "indemnity_eur": str(clock.indemnity),
    }


def waiting_complaints(db: Session, today: date, now: datetime, page: int = 1,
                       per_page: int = 50) -> dict:
    """The complaints waiting for an answer, the nearest deadline first (the late ones, longest
    late first, lead the list), a page of them, with how many there are, how many are late and
    the indemnity owed so far on the late ones."""
    if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
        raise ValueError(f"page from 1, per_page from 1 to {MAX_PER_PAGE}")
    T, C = m.Ticket, m.Customer
    where = _waiting()
    total, late = db.execute(select(
        func.count(T.id), func.count(case((T.answer_due_at <= now, T.id))))
        .where(*where)).one()
    rows = db.execute(
        select(T, C).join(C, T.customer_id == C.id).where(*where)
        .order_by(T.answer_due_at, T.id).offset((page - 1) * per_page).limit(per_page)).all()
    owed = sum((_clock(t, today).indemnity for t in db.execute(
        select(T).where(*where, T.answer_due_at <= now)).scalars()), _ZERO)
    listing = Page([_row(t, c, today) for t, c in rows], total, page, per_page)
    return {**listing.as_dict(), "late": late, "indemnity_owed_eur": str(owed),
            "today": today.isoformat()}


def answered_on_time(db: Session, start: date, end: date) -> dict:
    """The complaints answered in the period (Europe/Rome days), how many on time, the on-time
    rate (None without answers) and the indemnities owed for the late ones."""
    T = m.Ticket
    lo, hi = utc_bounds(start, end)
    answered = [T.kind == "complaint", T.answered_at >= lo, T.answered_at < hi,
                T.answer_due_at.isnot(None)]
    count, on_time = db.execute(select(
        func.count(T.id), func.count(case((T.answered_at < T.answer_due_at, T.id))))
        .where(*answered)).one()
    late = db.execute(select(T).where(and_(*answered, T.answered_at >= T.answer_due_at))
                      ).scalars().all()
    owed = sum((_clock(t, end).indemnity for t in late), _ZERO)
    return {"from": start.isoformat(), "to": end.isoformat(), "answered": count,
            "on_time": on_time, "late": count - on_time,
            "on_time_rate": on_time / count if count else None,
            "indemnities_eur": str(owed)}


def compare(db: Session, start: date, end: date) -> dict:
    """`answered_on_time` for the period and the previous one of the same length."""
    return {"current": answered_on_time(db, start, end),
            "previous": answered_on_time(db, *previous_period(start, end))}
