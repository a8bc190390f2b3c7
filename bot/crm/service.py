"""What the bot does to the customer history: verification, readings, tickets, contact data.

Functions here are synchronous and each is one transaction; actions call them through
`bot.persistence.db.run` (a worker thread), so the event loop never waits on the database.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from bot.crm import complaint_clock, models as m
from bot.masks import mask_email, mask_phone
from bot.persistence import tables
from bot.persistence.db import session_scope
from bot.settings import get_settings

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def customer_for_identity(channel: str, external_id: str) -> str | None:
    """The customer code linked to (channel, external id), if verified."""
    with session_scope() as s:
        row = s.execute(
            select(m.Customer.customer_code)
            .join(m.Identity)
            .where(m.Identity.channel == channel, m.Identity.external_id == external_id,
                   m.Identity.verified.is_(True))
        ).first()
        return row[0] if row else None


def link_identity(customer_code: str, channel: str, external_id: str) -> None:
    with session_scope() as s:
        customer = s.execute(
            select(m.Customer).where(m.Customer.customer_code == customer_code)
        ).scalar_one()
        ident = s.execute(
            select(m.Identity).where(m.Identity.channel == channel,
                                     m.Identity.external_id == external_id)
        ).scalar_one_or_none()
        if ident is None:
            s.add(m.Identity(customer_id=customer.id, channel=channel, external_id=external_id,
                             verified=True))
        else:
            ident.customer_id, ident.verified, ident.linked_at = customer.id, True, _now()


# --- one-time codes ------------------------------------------------------------------------

def _hash_code(customer_code: str, code: str) -> str:
    key = get_settings().secret_key.encode()
    return hmac.new(key, f"{customer_code}:{code}".encode(), hashlib.sha256).hexdigest()


# Wrong codes from one customer's side, all senders together, before a (progressive) lock:
# high enough that an attacker's guesses lock the attacker long before the customer.
CUSTOMER_FAILURES = 10
MAX_LOCK = timedelta(hours=24)
SENDS_PER_CONVERSATION = 3  # codes one conversation may ask for in an hour


@dataclass(frozen=True)
class OtpIssued:
    sent: bool  # False when the code is unknown, there is no contact on file, or limited
    masked_destination: str = ""
    locked_until: datetime | None = None
    limited: bool = False  # too many codes sent lately to this customer or destination


def _key(kind: str, value: str) -> str:
    """A counter's key; the value (customer code, conversation id, contact) is hashed, so the
    table holds no personal data."""
    digest = hmac.new(get_settings().secret_key.encode(), value.encode(), hashlib.sha256)
    return f"{kind}:{digest.hexdigest()[:48]}"


def verification_keys(customer_code: str, contacts: list[str] = ()) -> list[str]:
    """Every counter key about this customer (erasure deletes them)."""
    code = customer_code.upper()
    return ([_key("send:customer", code), _key("fail:customer", code)]
            + [_key("send:destination", c) for c in contacts if c])


def _counter(s: Session, key: str, now: datetime, window: timedelta) -> m.VerificationCounter:
    row = s.get(m.VerificationCounter, key, with_for_update=True)
    if row is None:
        row = m.VerificationCounter(key=key, count=0, window_start=now, locks=0)
        s.add(row)
    elif row.window_start + window <= now:
        row.count, row.window_start = 0, now
    return row


def _locked(row: m.VerificationCounter, now: datetime) -> datetime | None:
    return row.locked_until if row.locked_until and row.locked_until > now else None


def _fail(row: m.VerificationCounter, limit: int, base: timedelta, now: datetime) -> bool:
    """Count a failure; at `limit` lock, each lock twice as long as the last. True if locked."""
    row.count += 1
    if row.count < limit:
        return False
    row.locked_until = now + min(base * (2 ** row.locks), MAX_LOCK)
    row.locks += 1
    row.count, row.window_start = 0, now
    return True


def issue_otp(customer_code: str, conversation_id: str) -> OtpIssued:
    """Send a 6-digit code to the e-mail (else phone) on file.

    Every answer is the same whether the customer code exists or not: locks and send limits are
    counted on the code as typed. At most `SENDS_PER_CONVERSATION` codes per conversation and
    `OTP_SENDS_PER_HOUR` per customer and per destination; a new code replaces only the previous
    code of the same conversation (another sender cannot cancel the customer's code)."""
    settings = get_settings()
    now = _now()
    code_typed = (customer_code or "").upper()
    hour = timedelta(hours=1)
    lock_window = timedelta(minutes=settings.otp_lock_minutes)
    with session_scope() as s:
        for key in (_key("fail:sender", conversation_id), _key("fail:customer", code_typed)):
            until = _locked(_counter(s, key, now, lock_window), now)
            if until:
                return OtpIssued(False, locked_until=until)
        per_conversation = _counter(s, _key("send:sender", conversation_id), now, hour)
        per_customer = _counter(s, _key("send:customer", code_typed), now, hour)
        if (per_conversation.count >= SENDS_PER_CONVERSATION
                or per_customer.count >= settings.otp_sends_per_hour):
            return OtpIssued(False, limited=True)
        per_conversation.count += 1
        per_customer.count += 1
        c = s.execute(
            select(m.Customer).where(m.Customer.customer_code == code_typed)
        ).scalar_one_or_none()
        if c is None or not (c.email or c.phone):
            return OtpIssued(False)
        medium, destination = ("email", c.email) if c.email else ("sms", c.phone)
        per_destination = _counter(s, _key("send:destination", destination), now, hour)
        if per_destination.count >= settings.otp_sends_per_hour:
            return OtpIssued(False, limited=True)
        per_destination.count += 1
        s.execute(
            update(m.OneTimeCode)
            .where(m.OneTimeCode.customer_id == c.id,
                   m.OneTimeCode.conversation_id == conversation_id,
                   m.OneTimeCode.used_at.is_(None))
            .values(used_at=now)
        )
        code = f"{secrets.randbelow(10**6):06d}"
        s.add(m.OneTimeCode(
            customer_id=c.id, conversation_id=conversation_id,
            code_hash=_hash_code(code_typed, code), sent_to=medium, created_at=now,
            expires_at=now + timedelta(minutes=settings.otp_ttl_minutes),
        ))
        body = (f"Luce Nord Energia: il tuo codice di verifica è {code}. "
                f"Your verification code is {code}. "
                f"Valido {settings.otp_ttl_minutes} minuti / "
                f"valid {settings.otp_ttl_minutes} minutes.")
        _send(s, medium, destination, "Codice di verifica / Verification code", body)
        masked = mask_email(destination) if medium == "email" else mask_phone(destination)
        return OtpIssued(True, masked)


def _send(s: Session, medium: str, destination: str, subject: str, body: str) -> None:
    """Deliver the message with `bot.notify` (`OTP_DELIVERY`): the outbox table of the embedded
    demo (a row on `s`), or really by SMTP / SMS, at once, with an audit row on `s` that has no
    body. A message that cannot be sent raises `bot.notify.DeliveryError`, which rolls back this
    transaction (no code is stored that nobody received) and lets the caller tell the customer.
    Nothing is written to a log file; log lines mask the destination and never hold the body."""
    from bot.notify import Message, deliver

    deliver(Message(medium, destination, subject, body), get_settings(), session=s)


@dataclass(frozen=True)
class OtpCheck:
    ok: bool
    attempts_left: int = 0
    locked_until: datetime | None = None
    expired: bool = False


def check_otp(customer_code: str, conversation_id: str, code: str) -> OtpCheck:
    """Check a typed code.

    `OTP_MAX_ATTEMPTS` wrong codes lock this sender (conversation), each lock longer than the
    last; `CUSTOMER_FAILURES` wrong codes from any senders within the lock window slow the
    customer down the same way. An unknown customer code answers like a wrong code."""
    settings = get_settings()
    now = _now()
    code_typed = (customer_code or "").upper()
    digits = "".join(ch for ch in (code or "") if ch.isdigit())
    base = timedelta(minutes=settings.otp_lock_minutes)
    with session_scope() as s:
        sender = _counter(s, _key("fail:sender", conversation_id), now, base)
        customer = _counter(s, _key("fail:customer", code_typed), now, base)
        for row in (sender, customer):
            until = _locked(row, now)
            if until:
                return OtpCheck(False, 0, locked_until=until)
        c = s.execute(
            select(m.Customer).where(m.Customer.customer_code == code_typed)
        ).scalar_one_or_none()
        otp = None if c is None else s.execute(
            select(m.OneTimeCode)
            .where(m.OneTimeCode.customer_id == c.id,
                   m.OneTimeCode.conversation_id == conversation_id,
                   m.OneTimeCode.used_at.is_(None))
            .order_by(m.OneTimeCode.created_at.desc())
        ).scalars().first()
        if otp is not None and otp.expires_at < now:
            return OtpCheck(False, settings.otp_max_attempts - sender.count, expired=True)
        if otp is not None and hmac.compare_digest(otp.code_hash,
                                                   _hash_code(code_typed, digits)):
            otp.used_at = now
            sender.count, sender.locked_until, sender.locks = 0, None, 0
            return OtpCheck(True)
        customer_locked = _fail(customer, CUSTOMER_FAILURES, base, now)
        if _fail(sender, settings.otp_max_attempts, base, now) or customer_locked:
            if otp is not None:
                otp.used_at = now
            return OtpCheck(False, 0, locked_until=_locked(sender, now) or _locked(customer, now))
        return OtpCheck(False, settings.otp_max_attempts - sender.count)


# --- meter readings ------------------------------------------------------------------------

@dataclass(frozen=True)
class ReadingCheck:
    ok: bool
    problem: str = ""  # "lower", "implausible", "not_a_number", "unknown_supply"
    last_value: Decimal | None = None
    last_date: date | None = None
    max_value: Decimal | None = None
    consumption: Decimal | None = None


DAILY_FLOOR = {"electricity": Decimal(40), "gas": Decimal(20)}


def check_reading(customer_code: str, supply_id: str, value: Decimal | None,
                  today: date | None = None) -> ReadingCheck:
    """Validate a self-reading against the last one and a plausible consumption."""
    today = today or datetime.now(timezone.utc).date()
    if value is None:
        return ReadingCheck(False, "not_a_number")
    with session_scope() as s:
        supply = s.execute(
            select(m.Supply).join(m.Customer)
            .where(m.Supply.supply_id == supply_id, m.Customer.customer_code == customer_code)
        ).scalar_one_or_none()
        if supply is None:
            return ReadingCheck(False, "unknown_supply")
        readings = sorted(supply.readings, key=lambda r: (r.date, r.id))
        if not readings:
            return ReadingCheck(True)
        last = readings[-1]
        if value < last.value:
            return ReadingCheck(False, "lower", last.value, last.date)
        days = max((today - last.date).days, 1)
        daily = DAILY_FLOOR[supply.type]
        if len(readings) >= 2:
            span = max((readings[-1].date - readings[0].date).days, 1)
            avg = (readings[-1].value - readings[0].value) / span
            daily = max(daily, avg * 4)
        max_value = last.value + (daily * days).quantize(Decimal("1"))
        if value > max_value:
            return ReadingCheck(False, "implausible", last.value, last.date, max_value)
        return ReadingCheck(True, "", last.value, last.date, consumption=value - last.value)


def store_reading(customer_code: str, supply_id: str, value: Decimal, channel: str,
                  today: date | None = None) -> ReadingCheck:
    check = check_reading(customer_code, supply_id, value, today)
    if not check.ok:
        return check
    today = today or datetime.now(timezone.utc).date()
    with session_scope() as s:
        supply = s.execute(select(m.Supply).where(m.Supply.supply_id == supply_id)).scalar_one()
        existing = s.execute(
            select(m.Reading).where(m.Reading.supply_pk == supply.id, m.Reading.date == today,
                                    m.Reading.source == "self")
        ).scalar_one_or_none()
        if existing:
            existing.value, existing.received_at, existing.channel = value, _now(), channel
        else:
            s.add(m.Reading(supply_pk=supply.id, date=today, value=value, source="self",
                            received_at=_now(), channel=channel))
    return check


# --- tickets -------------------------------------------------------------------------------

def _next_ticket_id(s: Session, year: int) -> str:
    name = f"ticket-{year}"
    counter = s.get(tables.Counter, name, with_for_update=True)
    if counter is None:
        highest = 0
        for (tid,) in s.execute(select(m.Ticket.ticket_id).where(
                m.Ticket.ticket_id.like(f"T-{year}-%"))):
            highest = max(highest, int(tid.rsplit("-", 1)[1]))
        counter = tables.Counter(name=name, value=max(highest, 500000))
        s.add(counter)
        s.flush()
    counter.value += 1
    s.flush()
    return f"T-{year}-{counter.value:06d}"


@dataclass(frozen=True)
class TicketOpened:
    ticket_id: str
    eta: date | None
    answer_by: date | None = None  # a complaint's last day to be answered (complaint_clock)


def open_ticket(customer_code: str, kind: str, subject: str, channel: str, *,
                description: str = "", eta_days: int | None = None,
                callback_phone: str | None = None, callback_slot: str | None = None,
                skill: str | None = None, conversation_id: str | None = None) -> TicketOpened:
    """A new open ticket. A complaint gets its deadline now (the customer is told it); its
    expected date is that deadline unless `eta_days` says otherwise."""
    now = _now()
    with session_scope() as s:
        customer = s.execute(
            select(m.Customer).where(m.Customer.customer_code == customer_code)
        ).scalar_one()
        ticket_id = _next_ticket_id(s, now.year)
        eta = (now + timedelta(days=eta_days)).date() if eta_days is not None else None
        ticket = m.Ticket(
            customer_id=customer.id, ticket_id=ticket_id, kind=kind, status="open",
            subject=subject[:300], channel=channel, opened_at=now, updated_at=now, eta=eta,
            description=description[:4000], callback_phone=callback_phone,
            callback_slot=callback_slot, skill=skill, conversation_id=conversation_id,
        )
        m.stamp_clock(ticket)
        answer_by = (complaint_clock.day_of_deadline(ticket.answer_due_at)
                     if ticket.answer_due_at else None)
        ticket.eta = eta or answer_by
        s.add(ticket)
        return TicketOpened(ticket_id, ticket.eta, answer_by)


# --- contact data, paperless, direct debit -------------------------------------------------

def _customer(s: Session, customer_code: str) -> m.Customer:
    return s.execute(
        select(m.Customer).where(m.Customer.customer_code == customer_code)
    ).scalar_one()


def set_email(customer_code: str, email: str) -> None:
    """A new e-mail address; the previous one stays in the contact history (for erasure)."""
    with session_scope() as s:
        m.change_contact(s, _customer(s, customer_code), "email", email)


def set_phone(customer_code: str, phone: str) -> None:
    """A new phone number; the previous one stays in the contact history (for erasure)."""
    with session_scope() as s:
        m.change_contact(s, _customer(s, customer_code), "phone", phone)


def set_paperless(customer_code: str) -> None:
    with session_scope() as s:
        _customer(s, customer_code).paperless = True


def set_iban(customer_code: str, iban: str) -> None:
    with session_scope() as s:
        _customer(s, customer_code).direct_debit_iban = iban


# --- interactions --------------------------------------------------------------------------

def record_interaction(customer_code: str, channel: str, topic: str, outcome: str,
                       summary: str = "", conversation_id: str | None = None) -> None:
    """Append an interaction, or update this conversation's record of the same topic. The
    customer and that record are read in one query (an action records one at every turn)."""
    now = _now()
    with session_scope() as s:
        query = select(m.Customer.id)
        if conversation_id:
            query = select(m.Customer.id, m.Interaction).outerjoin(m.Interaction, and_(
                m.Interaction.customer_id == m.Customer.id,
                m.Interaction.conversation_id == conversation_id,
                m.Interaction.topic == topic,
                m.Interaction.at >= now - timedelta(hours=2)))
        row = s.execute(query.where(m.Customer.customer_code == customer_code).limit(1)).one()
        existing = row[1] if conversation_id else None
        if existing is not None:
            existing.outcome, existing.summary = outcome, summary or existing.summary
        else:
            s.add(m.Interaction(customer_id=row[0], at=now, channel=channel, topic=topic,
                                outcome=outcome, summary=summary,
                                conversation_id=conversation_id))


def conversation_recorded(conversation_id: str) -> bool:
    """Whether this conversation already wrote an interaction to the history."""
    with session_scope() as s:
        return s.execute(select(m.Interaction.id).where(
            m.Interaction.conversation_id == conversation_id)).first() is not None


# --- status versus a new request -----------------------------------------------------------

OPEN_TICKET_STATUSES = ("open", "in_progress")  # as bot.crm.card.TicketView.open
SIMILAR_TICKET_DAYS = 7


@dataclass(frozen=True)
class RecentTicket:
    ticket_id: str
    opened_at: datetime


def recent_open_ticket(customer_code: str, kind: str, days: int = SIMILAR_TICKET_DAYS,
                       now: datetime | None = None) -> RecentTicket | None:
    """The customer's newest open ticket of `kind` opened in the last `days` days: a new
    request of the same kind is then probably a question about it, not a new one."""
    since = (now or _now()) - timedelta(days=days)
    with session_scope() as s:
        row = s.execute(
            select(m.Ticket.ticket_id, m.Ticket.opened_at).join(m.Customer)
            .where(m.Customer.customer_code == customer_code, m.Ticket.kind == kind,
                   m.Ticket.status.in_(OPEN_TICKET_STATUSES), m.Ticket.opened_at >= since)
            .order_by(m.Ticket.opened_at.desc())
        ).first()
        return RecentTicket(row[0], row[1]) if row else None
