"""Facts a reply must state, computed from the customer history when the check runs.

A conversation file never holds an amount, a date or a ticket id: it names a fact
(`{fact: bill_amount, month: 10}`) and the runner reads it from the database of the stack under
test, then formats it the way the actions format it (bot.i18n), in the conversation's language.
So the suite stays right whatever day the demo data was generated on, and whatever the
conversations before it changed (a reading stored, a ticket opened).

Each fact is a function `(ctx, **params) -> Value`, registered with the parameters it accepts
(the file format checks them before anything runs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Dict, FrozenSet, Mapping, Optional

from babel.dates import format_date
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import i18n
from bot.crm import models as m
from bot.crm.card import active_outages
from bot.crm.service import DAILY_FLOOR
from bot.masks import mask_email, mask_iban, mask_phone
from bot.settings import local_zone

OPEN_BILL = ("unpaid", "overdue")
OPEN_TICKET = ("open", "in_progress")


class FactError(Exception):
    """A fact that cannot be computed for this customer (the conversation assumes data that is
    not there): reported as a failure of the conversation, never as a wrong reply."""


@dataclass(frozen=True)
class Value:
    """A fact's value and how it is shown: `said` as a reply states it, `typed` as a customer
    types it in a message."""

    raw: Any
    kind: str  # money | number | day | moment | text | status

    def said(self, lang: str, domain: Mapping[str, Any] | None = None) -> str:
        if self.kind == "money":
            return i18n.money(self.raw, lang)
        if self.kind == "number":
            return i18n.number(self.raw, lang)
        if self.kind == "day":
            return i18n.day(self.raw, lang)
        if self.kind == "moment":
            return i18n.moment(self.raw, lang)
        if self.kind == "status":
            return i18n.status(domain or {}, self.raw, lang)
        return str(self.raw)

    def typed(self, lang: str) -> str:
        if self.kind == "money":
            text = f"{self.raw:.2f}"
            return text.replace(".", ",") if lang == "it" else text
        if self.kind == "number":
            value = Decimal(self.raw)
            text = str(int(value)) if value == value.to_integral_value() else str(value)
            return text.replace(".", ",") if lang == "it" else text
        return self.said(lang)


@dataclass
class FactContext:
    """What a fact is computed from: the database session, whose facts, and the conversation
    (its sender id and the tickets that existed when it began)."""

    session: Session
    customer: Optional[str]
    lang: str = "it"
    sender: str = ""
    tickets_before: FrozenSet[str] = frozenset()
    domain: Mapping[str, Any] = field(default_factory=dict)
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def today(self) -> date:
        """The company's day (Italian time): due dates and bill months are counted from it."""
        return self.now.astimezone(local_zone()).date()

    @property
    def utc_today(self) -> date:
        """The day the history stores self-readings on (bot.crm.service uses UTC)."""
        return self.now.date()


FACTS: Dict[str, Callable[..., Value]] = {}
PARAMS: Dict[str, FrozenSet[str]] = {}
NEEDS_CUSTOMER: Dict[str, bool] = {}


def fact(*params: str, customer: bool = True) -> Callable:
    """Register a fact function under its name, with the parameters it accepts."""

    def register(fn: Callable[..., Value]) -> Callable[..., Value]:
        FACTS[fn.__name__] = fn
        PARAMS[fn.__name__] = frozenset(params)
        NEEDS_CUSTOMER[fn.__name__] = customer
        return fn

    return register


def compute(name: str, ctx: FactContext, params: Mapping[str, Any]) -> Value:
    """The value of fact `name` with `params` (None values are left out)."""
    if name not in FACTS:
        raise FactError(f"unknown fact {name!r}")
    if NEEDS_CUSTOMER[name] and not ctx.customer:
        raise FactError(f"fact {name!r} needs a customer, the conversation is anonymous")
    return FACTS[name](ctx, **{k: v for k, v in params.items() if v is not None})


# --- the customer and their records ---------------------------------------------------------

def customer_row(ctx: FactContext) -> m.Customer:
    row = ctx.session.execute(
        select(m.Customer).where(m.Customer.customer_code == ctx.customer)).scalar_one_or_none()
    if row is None:
        raise FactError(f"no customer {ctx.customer}")
    return row


def active_supply(ctx: FactContext, supply: Optional[str] = None) -> m.Supply:
    """The customer's active supply of that type, or their only active supply."""
    supplies = sorted((s for s in customer_row(ctx).supplies if s.status == "active"),
                      key=lambda s: s.supply_id)
    if supply:
        supplies = [s for s in supplies if s.type == supply]
        if not supplies:
            raise FactError(f"{ctx.customer} has no active {supply} supply")
        return supplies[0]
    if len(supplies) != 1:
        raise FactError(f"{ctx.customer} has {len(supplies)} active supplies: say which one")
    return supplies[0]


def _month_start(today: date, months_ago: int) -> date:
    index = today.year * 12 + today.month - 1 - months_ago
    return date(index // 12, index % 12 + 1, 1)


def _bills(ctx: FactContext, supply: Optional[str]) -> list[m.Bill]:
    """The customer's bills, newest first (as the identity card orders them)."""
    bills = sorted(customer_row(ctx).bills, key=lambda b: (b.period_end, b.number), reverse=True)
    if supply:
        bills = [b for b in bills if b.supply.type == supply]
    return bills


def pick_bill(ctx: FactContext, supply: Optional[str] = None, month: Optional[int] = None,
              months_ago: Optional[int] = None) -> m.Bill:
    """The bill of a month (calendar `month`: its latest one; or `months_ago` counted from the
    current month), else the latest bill. A month of a two-supply customer needs `supply`."""
    bills = _bills(ctx, supply)
    if month is None and months_ago is None:
        if not bills:
            raise FactError(f"{ctx.customer} has no bills")
        return bills[0]
    kinds = {b.supply.type for b in bills}
    if len(kinds) > 1:
        raise FactError(f"{ctx.customer} has bills for {sorted(kinds)}: say which supply")
    if months_ago is not None:
        start = _month_start(ctx.today, months_ago)
        found = [b for b in bills if (b.period_start.year, b.period_start.month)
                 == (start.year, start.month)]
    else:
        found = [b for b in bills if b.period_start.month == month]
    if not found:
        raise FactError(f"{ctx.customer} has no bill for that month")
    return found[0]


def open_bills(ctx: FactContext) -> list[m.Bill]:
    """Unpaid and overdue bills, the earliest due first (the order the bot lists them in)."""
    return sorted((b for b in customer_row(ctx).bills if b.status in OPEN_BILL),
                  key=lambda b: b.due_date)


def pick_open_ticket(ctx: FactContext, kind: Optional[str] = None) -> m.Ticket:
    """The newest open ticket (of `kind`) that existed when the conversation began."""
    tickets = [t for t in customer_row(ctx).tickets if t.status in OPEN_TICKET
               and (kind is None or t.kind == kind)
               and (not ctx.tickets_before or t.ticket_id in ctx.tickets_before)]
    if not tickets:
        raise FactError(f"{ctx.customer} has no open {kind or ''} ticket".replace("  ", " "))
    return max(tickets, key=lambda t: (t.opened_at, t.id))


def new_tickets(ctx: FactContext, kind: Optional[str] = None) -> list[m.Ticket]:
    """Tickets opened during this conversation (for this customer or this sender id)."""
    query = select(m.Ticket)
    if ctx.customer:
        query = query.join(m.Customer).where(m.Customer.customer_code == ctx.customer)
    else:
        query = query.where(m.Ticket.conversation_id == ctx.sender)
    rows = ctx.session.execute(query).scalars().all()
    return sorted((t for t in rows if t.ticket_id not in ctx.tickets_before
                   and (kind is None or t.kind == kind)), key=lambda t: t.id)


# --- bills ---------------------------------------------------------------------------------

@fact("supply", "month", "months_ago")
def bill_amount(ctx: FactContext, **which: Any) -> Value:
    return Value(pick_bill(ctx, **which).amount_eur, "money")


@fact("supply", "month", "months_ago")
def bill_number(ctx: FactContext, **which: Any) -> Value:
    return Value(pick_bill(ctx, **which).number, "text")


@fact("supply", "month", "months_ago")
def bill_due_date(ctx: FactContext, **which: Any) -> Value:
    return Value(pick_bill(ctx, **which).due_date, "day")


@fact("supply", "month", "months_ago")
def payment_link(ctx: FactContext, **which: Any) -> Value:
    from bot.settings import get_settings

    return Value(get_settings().payment_base_url + pick_bill(ctx, **which).number, "text")


@fact()
def open_bills_total(ctx: FactContext) -> Value:
    bills = open_bills(ctx)
    if not bills:
        raise FactError(f"{ctx.customer} has no bills to pay")
    return Value(sum((b.amount_eur for b in bills), Decimal(0)), "money")


@fact()
def open_bill_amount(ctx: FactContext) -> Value:
    """The first bill to pay (the earliest due)."""
    bills = open_bills(ctx)
    if not bills:
        raise FactError(f"{ctx.customer} has no bills to pay")
    return Value(bills[0].amount_eur, "money")


@fact()
def open_bill_number(ctx: FactContext) -> Value:
    bills = open_bills(ctx)
    if not bills:
        raise FactError(f"{ctx.customer} has no bills to pay")
    return Value(bills[0].number, "text")


@fact()
def open_bill_due_date(ctx: FactContext) -> Value:
    bills = open_bills(ctx)
    if not bills:
        raise FactError(f"{ctx.customer} has no bills to pay")
    return Value(bills[0].due_date, "day")


@fact()
def open_bill_link(ctx: FactContext) -> Value:
    """The payment link of the first bill to pay."""
    from bot.settings import get_settings

    bills = open_bills(ctx)
    if not bills:
        raise FactError(f"{ctx.customer} has no bills to pay")
    return Value(get_settings().payment_base_url + bills[0].number, "text")


def _month_word(ctx: FactContext, day: date) -> Value:
    locale = i18n.LOCALES.get(ctx.lang, "it_IT")
    return Value(format_date(day, "MMMM", locale=locale), "text")


@fact("supply")
def bill_month(ctx: FactContext, supply: Optional[str] = None) -> Value:
    """The month of the latest bill ("ottobre"), for a customer to name it."""
    return _month_word(ctx, pick_bill(ctx, supply).period_start)


@fact()
def open_bill_month(ctx: FactContext) -> Value:
    """The month of the first bill to pay."""
    bills = open_bills(ctx)
    if not bills:
        raise FactError(f"{ctx.customer} has no bills to pay")
    return _month_word(ctx, bills[0].period_start)


@fact("month", "months_ago", customer=False)
def month_name(ctx: FactContext, month: Optional[int] = None,
               months_ago: Optional[int] = None) -> Value:
    """A month's name in the conversation's language, for a customer to type ("ottobre")."""
    if month is None:
        return _month_word(ctx, _month_start(ctx.today, months_ago or 0))
    return _month_word(ctx, date(2000, month, 1))


# --- contract and supplies -----------------------------------------------------------------

@fact("supply")
def tariff(ctx: FactContext, supply: Optional[str] = None) -> Value:
    return Value(active_supply(ctx, supply).tariff, "text")


@fact("supply")
def supply_code(ctx: FactContext, supply: Optional[str] = None) -> Value:
    """The POD (electricity) or PDR (gas) code."""
    return Value(active_supply(ctx, supply).supply_id, "text")


@fact("supply")
def contract_start(ctx: FactContext, supply: Optional[str] = None) -> Value:
    return Value(active_supply(ctx, supply).start_date, "day")


@fact("supply")
def contract_end(ctx: FactContext, supply: Optional[str] = None) -> Value:
    end = active_supply(ctx, supply).end_date
    if end is None:
        raise FactError(f"{ctx.customer}'s supply has no end date")
    return Value(end, "day")


# --- readings ------------------------------------------------------------------------------

def _readings(supply: m.Supply) -> list[m.Reading]:
    return sorted(supply.readings, key=lambda r: (r.date, r.id))


def reading_limit(supply: m.Supply, today: date) -> Decimal:
    """The highest reading the bot accepts today: the rule of bot.crm.service.check_reading
    (the tests compare the two), so that a conversation's reading is always plausible."""
    readings = _readings(supply)
    last = readings[-1]
    days = max((today - last.date).days, 1)
    daily = DAILY_FLOOR[supply.type]
    if len(readings) >= 2:
        span = max((readings[-1].date - readings[0].date).days, 1)
        daily = max(daily, (readings[-1].value - readings[0].value) / span * 4)
    return last.value + (daily * days).quantize(Decimal("1"))


def _last(ctx: FactContext, supply: Optional[str]) -> tuple[m.Supply, Decimal]:
    row = active_supply(ctx, supply)
    readings = _readings(row)
    if not readings:
        raise FactError(f"{row.supply_id} has no readings")
    return row, readings[-1].value


@fact("supply")
def last_reading(ctx: FactContext, supply: Optional[str] = None) -> Value:
    return Value(_last(ctx, supply)[1], "number")


@fact("supply", "plus")
def next_reading(ctx: FactContext, supply: Optional[str] = None, plus: int = 50) -> Value:
    """A whole reading `plus` units above the last one, never above what the bot accepts today
    (after a self-reading today the allowance is one day's consumption)."""
    row, last = _last(ctx, supply)
    start = Decimal(math.ceil(last))
    limit = Decimal(math.floor(reading_limit(row, ctx.utc_today)))
    return Value(max(start + 1, min(start + plus, limit)), "number")


@fact("supply", "plus")
def typo_reading(ctx: FactContext, supply: Optional[str] = None, plus: int = 50) -> Value:
    """`next_reading` with one digit too many (the customer's finger slipped): implausible."""
    value = next_reading(ctx, supply, plus).raw * 10 + 7
    return Value(value, "number")


@fact("supply", "minus")
def lower_reading(ctx: FactContext, supply: Optional[str] = None, minus: int = 100) -> Value:
    """A reading below the last one (a meter never goes backwards)."""
    return Value(Decimal(math.floor(_last(ctx, supply)[1])) - minus, "number")


# --- tickets -------------------------------------------------------------------------------

@fact("kind")
def ticket_id(ctx: FactContext, kind: Optional[str] = None) -> Value:
    return Value(pick_open_ticket(ctx, kind).ticket_id, "text")


@fact("kind")
def ticket_eta(ctx: FactContext, kind: Optional[str] = None) -> Value:
    ticket = pick_open_ticket(ctx, kind)
    if ticket.eta is None:
        raise FactError(f"{ticket.ticket_id} has no expected date")
    return Value(ticket.eta, "day")


@fact("kind")
def ticket_status(ctx: FactContext, kind: Optional[str] = None) -> Value:
    return Value(pick_open_ticket(ctx, kind).status, "status")


@fact("kind", customer=False)
def new_ticket_id(ctx: FactContext, kind: Optional[str] = None) -> Value:
    """The ticket this conversation opened (the newest, if it wrongly opened several)."""
    tickets = new_tickets(ctx, kind)
    if not tickets:
        raise FactError(f"no {kind or ''} ticket was opened in this conversation"
                        .replace("  ", " "))
    return Value(tickets[-1].ticket_id, "text")


# --- contact data and payment --------------------------------------------------------------

@fact()
def first_name(ctx: FactContext) -> Value:
    return Value(customer_row(ctx).first_name, "text")


@fact()
def email_masked(ctx: FactContext) -> Value:
    email = customer_row(ctx).email
    if not email:
        raise FactError(f"{ctx.customer} has no e-mail")
    return Value(mask_email(email), "text")


@fact()
def phone_masked(ctx: FactContext) -> Value:
    phone = customer_row(ctx).phone
    if not phone:
        raise FactError(f"{ctx.customer} has no phone")
    return Value(mask_phone(phone), "text")


@fact()
def phone_national(ctx: FactContext) -> Value:
    """The phone on file as a customer types it: "349 7855586"."""
    phone = customer_row(ctx).phone or ""
    if not phone.startswith("+39"):
        raise FactError(f"{ctx.customer} has no Italian phone")
    return Value(f"{phone[3:6]} {phone[6:]}", "text")


@fact()
def iban_masked(ctx: FactContext) -> Value:
    iban = customer_row(ctx).direct_debit_iban
    if not iban:
        raise FactError(f"{ctx.customer} has no direct debit")
    return Value(mask_iban(iban), "text")


# --- outages -------------------------------------------------------------------------------

def known_outage(ctx: FactContext, supply: Optional[str] = None) -> m.Outage:
    postcodes = {s.postcode for s in customer_row(ctx).supplies if s.status == "active"
                 and (supply is None or s.type == supply)}
    outages = [o for o in active_outages(ctx.session, postcodes, ctx.now)
               if supply is None or o.type == supply]
    if not outages:
        raise FactError(f"no known outage at {ctx.customer}'s address")
    return outages[0]


@fact("supply")
def outage_end(ctx: FactContext, supply: Optional[str] = None) -> Value:
    return Value(known_outage(ctx, supply).expected_end, "moment")


@fact("supply")
def outage_postcode(ctx: FactContext, supply: Optional[str] = None) -> Value:
    outage = known_outage(ctx, supply)
    codes = {p.postcode for p in outage.postcodes}
    mine = sorted(s.postcode for s in customer_row(ctx).supplies if s.postcode in codes)
    return Value(mine[0], "text")


@fact(customer=False)
def gas_emergency_number(ctx: FactContext) -> Value:
    from bot.settings import get_settings

    return Value(get_settings().gas_emergency_number, "text")
