"""The identity card: one view of a customer, read in one call by every action.

A turn of a conversation runs several actions (the context update, the skill, the next best
action), and each used to read the card again. Inside a turn (`TURN`, set by the action server
for each call from the conversation's id and its latest message) the card is read once and kept
until this process writes to the database (`bot.persistence.db.writes`: a reading stored, a
ticket opened, a contact changed). The card is immutable, so a kept card can be shared. Another
process's write (the desk, an import) is seen from the next turn on.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bot.crm import models as m
from bot.crm.complaint_clock import ComplaintClock, clock_of
from bot.persistence.db import reading_scope, writes
from bot.persistence.reconnect import once_more

# (conversation id, timestamp of its latest user message) of the action call being served
TURN: ContextVar[tuple[str, float] | None] = ContextVar("turn", default=None)
_KEPT: OrderedDict[tuple[str, tuple[str, float]], tuple[int, IdentityCard | None]] = OrderedDict()
KEPT_TURNS = 256  # about the turns in progress at once; the oldest are dropped first
# The card's interactions: the newest only (every turn adds one, and a long-standing customer's
# history would otherwise be read whole at every turn). Their readers look back less: the next
# best action a week (bot/crm/nba.py), the agent's context 8 (bot/handover/pack.py).
CARD_INTERACTIONS = 50


@dataclass(frozen=True)
class ReadingView:
    date: date
    value: Decimal
    source: str


@dataclass(frozen=True)
class SupplyView:
    supply_id: str
    type: str
    address: str
    city: str
    postcode: str
    tariff: str
    unit_price_eur: Decimal
    status: str
    start_date: date
    end_date: date | None
    readings: tuple[ReadingView, ...]

    @property
    def last_reading(self) -> ReadingView | None:
        return self.readings[-1] if self.readings else None

    @property
    def unit(self) -> str:
        return "kWh" if self.type == "electricity" else "Smc"


@dataclass(frozen=True)
class BillView:
    number: str
    supply_id: str
    supply_type: str
    period_start: date
    period_end: date
    issue_date: date
    due_date: date
    amount_eur: Decimal
    status: str
    estimated: bool

    @property
    def open(self) -> bool:
        return self.status in ("unpaid", "overdue")

    def is_overdue(self, today: date) -> bool:
        return self.status == "overdue" or (self.status == "unpaid" and self.due_date < today)


@dataclass(frozen=True)
class TicketView:
    ticket_id: str
    kind: str
    status: str
    subject: str
    channel: str
    opened_at: datetime
    updated_at: datetime | None
    eta: date | None
    complaint_kind: str | None = None
    answer_due_at: datetime | None = None
    answered_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.status in ("open", "in_progress")

    def clock(self, today: date) -> ComplaintClock | None:
        """A complaint's deadline on `today` (None for other tickets)."""
        if self.kind != "complaint":
            return None
        return clock_of(self.complaint_kind, self.opened_at, self.answer_due_at,
                        self.answered_at, today)


@dataclass(frozen=True)
class InteractionView:
    at: datetime
    channel: str
    topic: str
    outcome: str
    summary: str
    conversation_id: str | None


@dataclass(frozen=True)
class OutageView:
    outage_id: str
    type: str
    postcodes: tuple[str, ...]
    started_at: datetime
    expected_end: datetime
    description: str


@dataclass(frozen=True)
class IdentityCard:
    customer_code: str
    first_name: str
    last_name: str
    language: str
    persona: str
    vip: bool
    email: str | None
    phone: str | None
    preferred_channel: str
    paperless: bool
    direct_debit_iban: str | None
    supplies: tuple[SupplyView, ...]
    bills: tuple[BillView, ...]  # newest first
    tickets: tuple[TicketView, ...]  # newest first
    interactions: tuple[InteractionView, ...]  # the newest CARD_INTERACTIONS, newest first
    outages: tuple[OutageView, ...] = field(default=())  # active, at one of their postcodes

    @property
    def open_bills(self) -> list[BillView]:
        return [b for b in self.bills if b.open]

    @property
    def open_tickets(self) -> list[TicketView]:
        return [t for t in self.tickets if t.open]

    def supply(self, supply_id: str) -> SupplyView | None:
        return next((s for s in self.supplies if s.supply_id == supply_id), None)

    @property
    def active_supplies(self) -> list[SupplyView]:
        return [s for s in self.supplies if s.status == "active"]


def active_outages(session: Session, postcodes: set[str], now: datetime) -> list[m.Outage]:
    if not postcodes:
        return []
    rows = session.execute(
        select(m.Outage)
        .join(m.OutagePostcode)
        .where(m.OutagePostcode.postcode.in_(sorted(postcodes)))
        .where(m.Outage.resolved_at.is_(None))
        .where(m.Outage.started_at <= now)
        .where(m.Outage.expected_end >= now - timedelta(hours=12))
        .options(selectinload(m.Outage.postcodes))
    ).scalars().unique().all()
    return list(rows)


def outage_view(o: m.Outage) -> OutageView:
    return OutageView(
        o.outage_id, o.type, tuple(p.postcode for p in o.postcodes), o.started_at,
        o.expected_end, o.description,
    )


def outage_views(session: Session, postcodes: set[str], now: datetime) -> list[OutageView]:
    """`active_outages` as the card shows them, in one query of plain columns (the card is read
    at every turn; the ORM's loading and its second query were a sixth of its time)."""
    if not postcodes:
        return []
    Out, P = m.Outage, m.OutagePostcode
    hit = select(P.outage_pk).where(P.postcode.in_(sorted(postcodes)))
    rows = session.execute(
        select(Out.id, Out.outage_id, Out.type, Out.started_at, Out.expected_end,
               Out.description,
               P.postcode)
        .join(P, P.outage_pk == Out.id)
        .where(Out.id.in_(hit), Out.resolved_at.is_(None), Out.started_at <= now,
               Out.expected_end >= now - timedelta(hours=12))
        .order_by(Out.id, P.id)).all()
    views: dict[int, tuple[Any, list[str]]] = {}
    for row in rows:
        views.setdefault(row.id, (row, []))[1].append(row.postcode)
    return [OutageView(r.outage_id, r.type, tuple(codes), r.started_at, r.expected_end,
                       r.description) for r, codes in views.values()]


def read_identity_card(customer_code: str, now: datetime | None = None) -> IdentityCard | None:
    """Synchronous read; actions use `load_identity_card`, which keeps the event loop free.
    Plain column queries (one per kind of record, each by an index), no ORM objects: the card is
    read at every turn and the ORM's loading was most of its time."""
    now = now or datetime.now(timezone.utc)
    C, S, R, B, T, In = m.Customer, m.Supply, m.Reading, m.Bill, m.Ticket, m.Interaction
    with reading_scope() as session:
        c = session.execute(
            select(C.id, C.customer_code, C.first_name, C.last_name, C.language, C.persona, C.vip,
                   C.email, C.phone, C.preferred_channel, C.paperless, C.direct_debit_iban)
            .where(C.customer_code == customer_code)).one_or_none()
        if c is None:
            return None
        supply_rows = session.execute(
            select(S.id, S.supply_id, S.type, S.address, S.city, S.postcode, S.tariff,
                   S.unit_price_eur, S.status, S.start_date, S.end_date)
            .where(S.customer_id == c.id).order_by(S.id)).all()
        readings: dict[int, list[ReadingView]] = {row.id: [] for row in supply_rows}
        if supply_rows:
            for r in session.execute(
                    select(R.supply_pk, R.date, R.value, R.source)
                    .where(R.supply_pk.in_(list(readings))).order_by(R.date, R.id)):
                readings[r.supply_pk].append(ReadingView(r.date, r.value, r.source))
        supplies = tuple(
            SupplyView(s.supply_id, s.type, s.address, s.city, s.postcode, s.tariff,
                       s.unit_price_eur, s.status, s.start_date, s.end_date,
                       tuple(readings[s.id]))
            for s in sorted(supply_rows, key=lambda s: s.supply_id)
        )
        bill_rows = session.execute(
            select(B.number, S.supply_id, S.type, B.period_start, B.period_end, B.issue_date,
                   B.due_date, B.amount_eur, B.status, B.estimated)
            .join(S, B.supply_pk == S.id).where(B.customer_id == c.id).order_by(B.id)).all()
        bills = tuple(BillView(*b) for b in sorted(
            bill_rows, key=lambda b: (b.period_end, b.number), reverse=True))
        ticket_rows = session.execute(
            select(T.ticket_id, T.kind, T.status, T.subject, T.channel, T.opened_at,
                   T.updated_at, T.eta, T.complaint_kind, T.answer_due_at, T.answered_at)
            .where(T.customer_id == c.id).order_by(T.id)).all()
        tickets = tuple(TicketView(*t) for t in sorted(
            ticket_rows, key=lambda t: t.opened_at, reverse=True))
        interactions = tuple(InteractionView(*i) for i in session.execute(
            select(In.at, In.channel, In.topic, In.outcome, In.summary, In.conversation_id)
            .where(In.customer_id == c.id).order_by(In.at.desc(), In.id)
            .limit(CARD_INTERACTIONS)))
        postcodes = {s.postcode for s in supply_rows if s.status == "active"}
        outages = tuple(outage_views(session, postcodes, now))
        return IdentityCard(
            c.customer_code, c.first_name, c.last_name, c.language, c.persona, c.vip, c.email,
            c.phone, c.preferred_channel, c.paperless, c.direct_debit_iban, supplies, bills,
            tickets, interactions, outages,
        )


async def load_identity_card(customer_code: str) -> IdentityCard | None:
    """The identity card of a customer, read in a worker thread (never blocks the loop), once
    per turn unless this process wrote to the database since."""
    turn = TURN.get()
    if turn is None:
        return await asyncio.to_thread(once_more, read_identity_card, customer_code)
    key = (customer_code, turn)
    kept = _KEPT.get(key)
    if kept is not None and kept[0] == writes():
        return kept[1]
    before = writes()  # a write during the read makes this card stale at once
    card = await asyncio.to_thread(once_more, read_identity_card, customer_code)
    _KEPT[key] = (before, card)
    _KEPT.move_to_end(key)
    while len(_KEPT) > KEPT_TURNS:
        _KEPT.popitem(last=False)
    return card
