"""SQLAlchemy models of the customer history (the "identity card") and what the bot writes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    inspect,
    select,
)
from sqlalchemy.orm import Session, relationship

from bot.crm import complaint_clock
from bot.persistence.types import Base, Money, UTCDateTime, utcnow

PERSONAS = ("family", "digital", "senior", "business")
SUPPLY_TYPES = ("electricity", "gas")
SUPPLY_STATUSES = ("active", "closed", "pending")
READING_SOURCES = ("actual", "estimated", "self")
BILL_STATUSES = ("paid", "unpaid", "overdue")
TICKET_KINDS = ("outage", "complaint", "request", "callback")
TICKET_STATUSES = ("open", "in_progress", "resolved", "closed")
ANSWERED_STATUSES = ("resolved", "closed")  # a ticket in one of these has had its answer
OUTCOMES = ("resolved", "handover", "abandoned")


class Customer(Base):
    __tablename__ = "customers"

    id = Column(Integer, primary_key=True)
    customer_code = Column(String(8), nullable=False, unique=True)
    first_name = Column(String(100), nullable=False)
    last_name = Column(String(100), nullable=False)
    language = Column(String(2), nullable=False)
    persona = Column(String(16), nullable=False)
    vip = Column(Boolean, nullable=False, default=False)
    email = Column(String(254))
    phone = Column(String(20))
    tax_code = Column(String(16))
    preferred_channel = Column(String(16), nullable=False)
    paperless = Column(Boolean, nullable=False, default=False)
    direct_debit_iban = Column(String(34))
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    updated_at = Column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)

    identities = relationship("Identity", back_populates="customer", cascade="all, delete-orphan")
    supplies = relationship("Supply", back_populates="customer", cascade="all, delete-orphan")
    bills = relationship("Bill", back_populates="customer", cascade="all, delete-orphan")
    tickets = relationship("Ticket", back_populates="customer", cascade="all, delete-orphan")
    interactions = relationship(
        "Interaction", back_populates="customer", cascade="all, delete-orphan"
    )


class Identity(Base):
    """A customer's identity on a channel: (channel, external_id) → customer."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_identity_channel_ext"),)

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False,
                         index=True)
    channel = Column(String(16), nullable=False)
    external_id = Column(String(128), nullable=False)
    verified = Column(Boolean, nullable=False, default=False)
    linked_at = Column(UTCDateTime, nullable=False, default=utcnow)

    customer = relationship("Customer", back_populates="identities")


CONTACT_KINDS = ("email", "phone")


class ContactHistory(Base):
    """Every e-mail address and phone number a customer has had: since when (`valid_from`,
    empty when it predates this record) and until when (`valid_until`, empty for the current
    one). Erasure finds by it what was ever sent to any of them."""

    __tablename__ = "contact_history"
    __table_args__ = (Index("ix_contact_history_customer", "customer_id", "kind"),)

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    kind = Column(String(8), nullable=False)  # CONTACT_KINDS
    value = Column(String(254), nullable=False)
    valid_from = Column(UTCDateTime)
    valid_until = Column(UTCDateTime)


def note_contact(session: Session, customer_id: int, kind: str, previous: str | None,
                 current: str | None, at: datetime | None = None) -> None:
    """Record in `contact_history` that the customer's e-mail or phone (`kind`) went from
    `previous` to `current`: the open record ends, one opens for the new value. A previous value
    with no record (it predates the history) is recorded too, its start unknown."""
    if kind not in CONTACT_KINDS:
        raise ValueError(f"not a contact kind: {kind!r}")
    previous, current = previous or None, current or None
    if previous == current:
        return
    at = at or utcnow()
    open_rows = session.execute(select(ContactHistory).where(
        ContactHistory.customer_id == customer_id, ContactHistory.kind == kind,
        ContactHistory.valid_until.is_(None))).scalars().all()
    for row in open_rows:
        row.valid_until = at
    if previous and not any(row.value == previous for row in open_rows):
        session.add(ContactHistory(customer_id=customer_id, kind=kind, value=previous,
                                   valid_until=at))
    if current:
        session.add(ContactHistory(customer_id=customer_id, kind=kind, value=current,
                                   valid_from=at))


def change_contact(session: Session, customer: "Customer", kind: str, value: str | None) -> None:
    """Give the customer a new e-mail or phone (`kind`), keeping the old one in the history."""
    note_contact(session, customer.id, kind, getattr(customer, kind), value)
    setattr(customer, kind, value)


class Supply(Base):
    __tablename__ = "supplies"

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False,
                         index=True)
    supply_id = Column(String(20), nullable=False, unique=True)
    type = Column(String(16), nullable=False)
    address = Column(String(200), nullable=False)
    city = Column(String(100), nullable=False)
    postcode = Column(String(5), nullable=False, index=True)
    tariff = Column(String(100), nullable=False)
    unit_price_eur = Column(Money(10, 4), nullable=False)
    status = Column(String(16), nullable=False)
    start_date = Column(Date, nullable=False)
    end_date = Column(Date)

    customer = relationship("Customer", back_populates="supplies")
    readings = relationship(
        "Reading", back_populates="supply", cascade="all, delete-orphan", order_by="Reading.date"
    )


class Reading(Base):
    __tablename__ = "readings"
    __table_args__ = (UniqueConstraint("supply_pk", "date", "source", name="uq_reading"),)

    id = Column(Integer, primary_key=True)
    supply_pk = Column(Integer, ForeignKey("supplies.id", ondelete="CASCADE"), nullable=False)
    date = Column(Date, nullable=False)
    value = Column(Money(12, 3), nullable=False)
    source = Column(String(16), nullable=False)
    received_at = Column(UTCDateTime)
    channel = Column(String(16))

    supply = relationship("Supply", back_populates="readings")


class Bill(Base):
    __tablename__ = "bills"

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False,
                         index=True)
    supply_pk = Column(Integer, ForeignKey("supplies.id", ondelete="CASCADE"), nullable=False,
                       index=True)
    number = Column(String(32), nullable=False, unique=True)
    period_start = Column(Date, nullable=False)
    period_end = Column(Date, nullable=False)
    issue_date = Column(Date, nullable=False)
    due_date = Column(Date, nullable=False)
    amount_eur = Column(Money(10, 2), nullable=False)
    status = Column(String(16), nullable=False)
    estimated = Column(Boolean, nullable=False, default=False)

    customer = relationship("Customer", back_populates="bills")
    supply = relationship("Supply")


class Ticket(Base):
    """A customer's request, fault, callback or complaint. A complaint carries its clock
    (`bot.crm.complaint_clock`): the kind of deadline, the instant the deadline ends, and when it
    was answered (the first time its status became resolved or closed)."""

    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_answer_due_at", "answer_due_at"),
                      Index("ix_tickets_answered_at", "answered_at"))

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False,
                         index=True)
    ticket_id = Column(String(20), nullable=False, unique=True)
    kind = Column(String(16), nullable=False)
    status = Column(String(16), nullable=False)
    subject = Column(String(300), nullable=False)
    channel = Column(String(16), nullable=False)
    opened_at = Column(UTCDateTime, nullable=False)
    updated_at = Column(UTCDateTime)
    eta = Column(Date)
    description = Column(Text)
    callback_phone = Column(String(20))
    callback_slot = Column(String(100))
    skill = Column(String(32))
    conversation_id = Column(String(128))
    complaint_kind = Column(String(20))  # complaint_clock.KINDS; complaints only
    answer_due_at = Column(UTCDateTime)  # a complaint answered before this is on time
    answered_at = Column(UTCDateTime)

    customer = relationship("Customer", back_populates="tickets")


def stamp_clock(ticket: Ticket) -> None:
    """Give a complaint its kind and its answer's deadline (again when the moment it arrived
    changes, never because the settings did), and any ticket the moment it was answered: when
    its status changes to resolved or closed, the CRM's moment of that change (`updated_at`,
    when the same write sets it) or now; a ticket first stored already answered takes its
    `updated_at`, and none when the CRM gave none (the moment is unknown: it is not counted as
    answered today). Run on every insert and update of a ticket, whoever writes it (the bot, the
    import, the demo seed)."""
    if ticket.kind == "complaint" and ticket.opened_at is not None:
        if ticket.complaint_kind is None:
            ticket.complaint_kind = complaint_clock.kind_of(ticket.description or ticket.subject)
        state = inspect(ticket)
        moved = state.persistent and state.attrs.opened_at.history.has_changes()
        if ticket.answer_due_at is None or moved:
            ticket.answer_due_at = complaint_clock.deadline_instant(
                complaint_clock.last_day(ticket.opened_at))
    if ticket.status in ANSWERED_STATUSES and ticket.answered_at is None:
        state = inspect(ticket)
        if not state.persistent:  # stored answered: the CRM's moment of it, if it gave one
            ticket.answered_at = ticket.updated_at
        elif state.attrs.status.history.has_changes():  # answered by this change
            changed = state.attrs.updated_at.history.has_changes()
            ticket.answered_at = (ticket.updated_at if changed else None) or utcnow()


@event.listens_for(Ticket, "before_insert")
@event.listens_for(Ticket, "before_update")
def _stamp_clock(_mapper: Any, _connection: Any, ticket: Ticket) -> None:
    stamp_clock(ticket)


class Interaction(Base):
    __tablename__ = "interactions"
    __table_args__ = (
        UniqueConstraint("customer_id", "at", "channel", "topic", name="uq_interaction"),
        Index("ix_interaction_customer_at", "customer_id", "at"),
    )

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    at = Column(UTCDateTime, nullable=False)
    channel = Column(String(16), nullable=False)
    topic = Column(String(64), nullable=False)
    outcome = Column(String(16), nullable=False)
    summary = Column(Text, nullable=False, default="")
    conversation_id = Column(String(128))

    customer = relationship("Customer", back_populates="interactions")


class Outage(Base):
    __tablename__ = "outages"

    id = Column(Integer, primary_key=True)
    outage_id = Column(String(20), nullable=False, unique=True)
    type = Column(String(16), nullable=False)
    started_at = Column(UTCDateTime, nullable=False)
    expected_end = Column(UTCDateTime, nullable=False)
    description = Column(Text, nullable=False)
    resolved_at = Column(UTCDateTime)

    postcodes = relationship(
        "OutagePostcode", back_populates="outage", cascade="all, delete-orphan"
    )


class OutagePostcode(Base):
    __tablename__ = "outage_postcodes"
    __table_args__ = (UniqueConstraint("outage_pk", "postcode", name="uq_outage_postcode"),)

    id = Column(Integer, primary_key=True)
    outage_pk = Column(Integer, ForeignKey("outages.id", ondelete="CASCADE"), nullable=False)
    postcode = Column(String(5), nullable=False, index=True)

    outage = relationship("Outage", back_populates="postcodes")


class OneTimeCode(Base):
    """A one-time code sent to the contact on file to verify a customer in a conversation."""

    __tablename__ = "one_time_codes"

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False,
                         index=True)
    conversation_id = Column(String(128), nullable=False)
    code_hash = Column(String(128), nullable=False)
    sent_to = Column(String(16), nullable=False)  # "email" or "sms"
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    expires_at = Column(UTCDateTime, nullable=False)
    used_at = Column(UTCDateTime)


class VerificationState(Base):
    """Failed one-time-code attempts per customer; too many lock verification for a while."""

    __tablename__ = "verification_states"

    customer_id = Column(
        Integer, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    failed_attempts = Column(Integer, nullable=False, default=0)
    locked_until = Column(UTCDateTime)


class VerificationCounter(Base):
    """A counter of one-time-code sends or failures in a window, with a progressive lock.

    Keys name what is counted: `send:customer:<id>`, `send:destination:<hash>`,
    `fail:sender:<conversation id hash>`, `fail:customer:<id>`. Counting per sender and per
    customer separately means an attacker's wrong guesses lock the attacker, and only a
    large number of them from many senders slows the customer down."""

    __tablename__ = "verification_counters"

    key = Column(String(96), primary_key=True)
    count = Column(Integer, nullable=False, default=0)
    window_start = Column(UTCDateTime, nullable=False)
    locked_until = Column(UTCDateTime)
    locks = Column(Integer, nullable=False, default=0)  # locks so far: each one is longer
