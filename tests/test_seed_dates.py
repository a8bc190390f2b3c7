"""The demo data's dates hold together as a customer reads them, whatever day and hour the demo
is started: checked on the seeded database for days around month, year and leap-day edges."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from bot.crm import models as m

ROME = ZoneInfo("Europe/Rome")
# The seed's own day, the audit's day (a November bill was due on 22 November), the first days
# of a month and of a year, after a short February, a leap day, a month's last day.
DAYS = [date(2026, 11, 23), date(2026, 12, 2), date(2027, 1, 1), date(2027, 3, 3),
        date(2028, 2, 29), date(2026, 8, 31)]


@pytest.fixture(scope="module")
def seeded_days(tmp_path_factory):
    """One database per day, seeded as the demo does (`seed_demo(url, today)`)."""
    from bot.crm.seed import seed_demo
    from bot.persistence.db import get_engine, migrate, session_scope

    out = {}
    for today in DAYS:
        url = f"sqlite:///{tmp_path_factory.mktemp('seed') / f'{today}.db'}"
        migrate(url)
        seed_demo(url, today)
        with session_scope(url) as s:
            customers = s.execute(select(m.Customer).options(
                selectinload(m.Customer.supplies).selectinload(m.Supply.readings),
                selectinload(m.Customer.bills).selectinload(m.Bill.supply),
                selectinload(m.Customer.tickets),
                selectinload(m.Customer.interactions))).scalars().all()
            outages = s.execute(select(m.Outage).options(
                selectinload(m.Outage.postcodes))).scalars().all()
            s.expunge_all()
        get_engine(url).dispose()
        out[today] = (customers, outages)
    return out


def midnight(today: date) -> datetime:
    """The first moment of `today` in Italy: what is "in the past" whenever the demo starts."""
    return datetime.combine(today, time(0, 0), ROME)


@pytest.mark.parametrize("today", DAYS)
def test_bills_are_issued_after_their_period_and_due_after_issue(seeded_days, today):
    customers, _ = seeded_days[today]
    for c in customers:
        by_supply = defaultdict(list)
        for b in c.bills:
            by_supply[b.supply.supply_id].append(b)
            assert b.period_start <= b.period_end < b.issue_date < b.due_date, \
                (c.customer_code, b.number)
            assert b.issue_date <= today, (c.customer_code, b.number)  # no bill from the future
            assert b.status in ("paid", "unpaid", "overdue")
            if b.status == "overdue":
                assert b.due_date < today, (c.customer_code, b.number)
            if b.status == "unpaid":
                assert b.due_date >= today, (c.customer_code, b.number)
        for supply_id, bills in by_supply.items():
            bills.sort(key=lambda b: b.period_start)
            for earlier, later in zip(bills, bills[1:]):  # monthly, back to back, in order
                assert later.period_start == earlier.period_end + timedelta(days=1), supply_id
                assert earlier.issue_date < later.issue_date, supply_id
                assert earlier.status == "paid", supply_id  # only the latest is left to pay
            assert bills[0].period_start.day == 1 and len(bills) == 12


@pytest.mark.parametrize("today", DAYS)
def test_readings_and_contracts_come_before_today(seeded_days, today):
    customers, _ = seeded_days[today]
    for c in customers:
        bills = {s.supply_id: sorted((b for b in c.bills if b.supply.supply_id == s.supply_id),
                                     key=lambda b: b.period_end) for s in c.supplies}
        for s in c.supplies:
            assert s.start_date <= bills[s.supply_id][0].period_start, s.supply_id
            dates = [r.date for r in s.readings]
            values = [r.value for r in s.readings]
            assert dates == sorted(dates) and values == sorted(values), s.supply_id
            assert all(s.start_date < d < today for d in dates), s.supply_id
            # each bill rests on the reading taken at the end of its period
            assert [b.period_end for b in bills[s.supply_id]] == dates, s.supply_id


@pytest.mark.parametrize("today", DAYS)
def test_tickets_contacts_and_outages_happened_before_today(seeded_days, today):
    customers, outages = seeded_days[today]
    start = midnight(today)
    tickets = [t for c in customers for t in c.tickets]
    assert tickets
    for t in tickets:
        assert t.opened_at < start, t.ticket_id
        assert t.ticket_id.startswith(f"T-{t.opened_at.astimezone(ROME).year}-"), t.ticket_id
        if t.updated_at is not None:
            assert t.opened_at <= t.updated_at < start, t.ticket_id
        if t.eta is not None:
            assert t.eta >= t.opened_at.astimezone(ROME).date(), t.ticket_id
        if t.status in ("open", "in_progress"):
            assert t.eta is None or t.eta >= today, t.ticket_id  # not "expected by" a past day
        else:
            assert t.eta is None, t.ticket_id
    for c in customers:
        assert all(i.at < start for i in c.interactions), c.customer_code
    end_of_today = midnight(today + timedelta(days=1))
    for o in outages:
        assert o.started_at < start and o.expected_end > end_of_today, o.outage_id
        assert o.outage_id.startswith(f"O-{o.started_at.astimezone(ROME).year}-"), o.outage_id


@pytest.mark.parametrize("today", DAYS)
def test_the_named_demo_customers_keep_their_facts(seeded_days, today):
    """What the README and the other tests say about them, on every day."""
    customers, outages = seeded_days[today]
    by_code = {c.customer_code: c for c in customers}
    maria = [b for b in by_code["C1000001"].bills if b.status != "paid"]
    assert [(b.status, (b.due_date - today).days) for b in maria] == [("overdue", -10)]
    for code in ("C1000004", "C1000005", "C1000006"):
        unpaid = [b for b in by_code[code].bills if b.status != "paid"]
        assert [(b.status, (b.due_date - today).days) for b in unpaid] == [("unpaid", 14)], code
    for code in ("C1000001", "C1000006"):  # the unpaid bill is the latest, and higher than usual
        bills = sorted(by_code[code].bills, key=lambda b: b.period_end, reverse=True)
        assert bills[0].status != "paid" and bills[0].estimated
        average = sum(b.amount_eur for b in bills[1:]) / len(bills[1:])
        assert bills[0].amount_eur > average * 115 / 100, code
    giuseppe = by_code["C1000002"]
    postcodes = {s.postcode for s in giuseppe.supplies}
    assert any(o.type == "electricity" and {p.postcode for p in o.postcodes} & postcodes
               for o in outages)
    assert [t.status for t in giuseppe.tickets if t.kind == "outage"] == ["in_progress"]
    laura = [t for t in by_code["C1000003"].tickets if t.kind == "complaint"]
    assert laura and laura[0].updated_at > laura[0].opened_at
