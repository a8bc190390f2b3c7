"""Customer history: migrations, import, demo seed, identity card, and what the bot writes."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from stdnum import iban as stdnum_iban
from stdnum.it import codicefiscale

from bot.crm import models as m
from bot.crm.importer import ImportError_, import_file, validate
from bot.persistence import tables
from bot.persistence.db import session_scope

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "tests" / "data" / "example.json"


def counts(url=None) -> dict:
    with session_scope(url) as s:
        return {model.__tablename__: s.execute(select(func.count()).select_from(model)).scalar_one()
                for model in (m.Customer, m.Identity, m.Supply, m.Reading, m.Bill, m.Ticket,
                              m.Interaction, m.Outage, m.OutagePostcode)}


def test_migrations_create_every_table(database):
    assert counts(database) == {t: 0 for t in counts(database)}


def test_import_example_then_reimport_is_idempotent(database):
    report = import_file(EXAMPLE)
    assert report.customers == 1 and report.interactions_added == 1
    first = counts()
    assert first["customers"] == 1 and first["readings"] == 2 and first["outage_postcodes"] == 2
    report = import_file(EXAMPLE)
    assert report.interactions_added == 0
    assert counts() == first
    with session_scope() as s:
        bill = s.execute(select(m.Bill)).scalar_one()
        assert bill.amount_eur == Decimal("84.20")
        ticket = s.execute(select(m.Ticket)).scalar_one()
        assert ticket.opened_at == datetime(2026, 11, 2, 8, 15, tzinfo=timezone.utc)


def test_import_updates_changed_values(database, tmp_path):
    import_file(EXAMPLE)
    doc = json.loads(EXAMPLE.read_text())
    doc["customers"][0]["bills"][0]["status"] = "paid"
    doc["customers"][0]["email"] = "nuova@example.it"
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(doc))
    import_file(path)
    with session_scope() as s:
        assert s.execute(select(m.Bill.status)).scalar_one() == "paid"
        assert s.execute(select(m.Customer.email)).scalar_one() == "nuova@example.it"
        assert s.execute(select(func.count(m.Customer.id))).scalar_one() == 1


def test_reimport_moves_rows_to_their_new_customer_and_keeps_one_of_each(database, tmp_path):
    """Rows are found by their own keys whichever customer held them: a supply, its readings,
    a bill, a ticket and an identity given under another customer change hands instead of
    being added again, and an interaction given at the same instant in another UTC offset is
    the same interaction."""
    import_file(EXAMPLE)
    doc = json.loads(EXAMPLE.read_text())
    maria = doc["customers"][0]
    new = copy.deepcopy(maria)
    new.update(customer_code="C1000099", first_name="Luca", email=None, phone=None,
               tax_code=None, interactions=[])
    new["identities"] = [maria["identities"][0]]  # telegram
    new["supplies"][0]["readings"] = [
        {"date": "2026-10-31", "value": "12600", "source": "estimated"},  # corrected
        {"date": "2026-11-30", "value": "12900", "source": "actual"},  # new
    ]
    maria.update(identities=[maria["identities"][1]], supplies=[], bills=[], tickets=[])
    maria["interactions"][0]["at"] = "2026-11-20T17:02:00Z"  # the same instant
    doc["customers"].append(new)
    path = tmp_path / "moved.json"
    path.write_text(json.dumps(doc))
    report = import_file(path)
    assert report.customers == 2 and report.interactions_added == 0
    assert counts() == {"customers": 2, "identities": 2, "supplies": 1, "readings": 3,
                        "bills": 1, "tickets": 1, "interactions": 1, "outages": 1,
                        "outage_postcodes": 2}
    with session_scope() as s:
        luca = s.execute(select(m.Customer.id).where(m.Customer.customer_code == "C1000099")
                         ).scalar_one()
        for model in (m.Supply, m.Bill, m.Ticket):
            assert s.execute(select(model.customer_id)).scalar_one() == luca
        assert s.execute(select(m.Identity.customer_id).where(
            m.Identity.channel == "telegram")).scalar_one() == luca
        assert dict(s.execute(select(m.Reading.date, m.Reading.value)).all()) == {
            date(2026, 9, 30): Decimal("12345"), date(2026, 10, 31): Decimal("12600"),
            date(2026, 11, 30): Decimal("12900")}


def broken_document() -> dict:
    doc = json.loads(EXAMPLE.read_text())
    c = doc["customers"][0]
    c["bills"][0]["due_date"] = "31/12/2026"
    c["bills"][0]["amount_eur"] = 84.2
    c["language"] = "de"
    c["nickname"] = "Mari"
    del c["last_name"]
    c["supplies"][0]["readings"][1]["value"] = "dodici"
    c["tickets"][0]["opened_at"] = "2026-11-02T09:15:00"
    c["direct_debit_iban"] = "IT00X0000000000000000000000"
    doc["outages"][0]["postcodes"] = ["2012"]
    return doc


def test_invalid_file_lists_every_problem_and_writes_nothing(database, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken_document()))
    with pytest.raises(ImportError_) as err:
        import_file(path)
    problems = err.value.problems
    expected = [
        "customers[0].bills[0].due_date: not a date",
        "customers[0].bills[0].amount_eur: amounts are decimal strings",
        "customers[0].language: must be one of it, en",
        "customers[0].nickname: unknown field",
        "customers[0].last_name: missing",
        "customers[0].supplies[0].readings[1].value: not a decimal number",
        "customers[0].tickets[0].opened_at: a date-time needs a UTC offset",
        "customers[0].direct_debit_iban: not a valid IBAN",
        "outages[0].postcodes: contains '2012'",
    ]
    for line in expected:
        assert any(p.startswith(line) for p in problems), (line, problems)
    assert len(problems) == len(expected)
    assert all(v == 0 for v in counts().values())


def test_duplicates_and_foreign_supply_are_reported():
    doc = json.loads(EXAMPLE.read_text())
    twin = copy.deepcopy(doc["customers"][0])
    twin["bills"][0]["supply_id"] = "IT001E99999999"
    doc["customers"].append(twin)
    problems = validate(doc)
    assert ("customers[1].customer_code: duplicate customer_code "
            "(first at customers[0].customer_code)") in problems
    assert "customers[1].bills[0].supply_id: not one of this customer's supplies" in problems
    assert any(p.startswith("customers[1].identities[0]: duplicate identity") for p in problems)


def test_import_cli_exit_codes(tmp_path):
    env_db = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"DATABASE_URL": env_db, "SPORTELLO_VAR_DIR": str(tmp_path), "PATH": "/usr/bin:/bin",
           "SQLALCHEMY_SILENCE_UBER_WARNING": "1"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(broken_document()))
    out = subprocess.run([sys.executable, "-m", "bot", "import-data", str(bad)], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert "nothing was imported" in out.stderr
    assert "customers[0].bills[0].due_date: not a date" in out.stderr
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    out = subprocess.run([sys.executable, "-m", "bot", "import-data", str(garbage)], cwd=ROOT,
                         env=env, capture_output=True, text=True)
    assert out.returncode == 1 and "not valid JSON" in out.stderr
    out = subprocess.run([sys.executable, "-m", "bot", "import-data", str(EXAMPLE)], cwd=ROOT,
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "imported 1 customers" in out.stdout


def test_demo_seed_is_deterministic_and_realistic():
    from bot.crm.seed import build_document

    today = date(2026, 11, 23)
    doc = build_document(today)
    assert doc == build_document(today)
    assert validate(doc) == []
    customers = doc["customers"]
    assert len(customers) >= 200
    assert {c["persona"] for c in customers} == {"family", "digital", "senior", "business"}
    assert {c["language"] for c in customers} == {"it", "en"}
    for c in customers:
        if c["tax_code"]:
            assert codicefiscale.is_valid(c["tax_code"])
        if c["direct_debit_iban"]:
            assert stdnum_iban.is_valid(c["direct_debit_iban"])
        for s in c["supplies"]:
            assert len(s["readings"]) == 12
            if s["type"] == "electricity":
                assert s["supply_id"].startswith("IT001E") and len(s["supply_id"]) == 14
            else:
                assert s["supply_id"].isdigit() and len(s["supply_id"]) == 14
        assert len(c["bills"]) == 12 * len(c["supplies"])
    channels = {i["channel"] for c in customers for i in c["interactions"]}
    assert len(channels) >= 4
    assert sum(len(c["tickets"]) for c in customers) >= 10
    assert len(doc["outages"]) == 2


def test_seed_loads_into_the_database(database):
    from bot.crm.seed import build_document, is_empty, seed_demo

    today = date(2026, 11, 23)
    doc = build_document(today)
    expected = {"customers": len(doc["customers"]),
                "supplies": sum(len(c["supplies"]) for c in doc["customers"]),
                "bills": sum(len(c["bills"]) for c in doc["customers"]),
                "tickets": sum(len(c["tickets"]) for c in doc["customers"]),
                "outages": len(doc["outages"])}
    assert is_empty()
    assert seed_demo(today=today) == expected["customers"]
    loaded = counts()
    assert {name: loaded[name] for name in expected} == expected
    seed_demo(today=today)  # idempotent
    assert counts() == loaded


def test_identity_card_and_next_best_action(demo_database):
    from bot.crm.card import read_identity_card
    from bot.crm.nba import next_best_action, unresolved_recent_contact

    now = datetime.now(timezone.utc)
    giuseppe = read_identity_card("C1000002")
    assert giuseppe.outages and next_best_action(giuseppe, now).kind == "outage"
    maria = read_identity_card("C1000001")
    nba = next_best_action(maria, now)
    assert nba.kind == "overdue_bill" and nba.params["bill"].status == "overdue"
    laura = read_identity_card("C1000003")
    assert next_best_action(laura, now).kind == "ticket_news"
    anna = read_identity_card("C1000006")
    recent = unresolved_recent_contact(anna, "web", now)
    assert recent is not None and recent.channel == "whatsapp" and recent.topic == "check_bill"
    assert unresolved_recent_contact(anna, "whatsapp", now) is None
    assert read_identity_card("C9999999") is None


def test_next_best_action_priority():
    from bot.crm.card import BillView, IdentityCard, OutageView, TicketView
    from bot.crm.nba import next_best_action

    now = datetime(2026, 11, 10, 12, tzinfo=timezone.utc)  # reading window closed
    base = IdentityCard("C1", "A", "B", "it", "family", False, "a@b.it", None, "web", False,
                        None, (), (), (), ())
    assert next_best_action(base, now).kind == "paperless"
    assert next_best_action(base.__class__(**{**base.__dict__, "paperless": True}), now) is None
    ticket = TicketView("T-2026-000001", "complaint", "open", "x", "web",
                        now - timedelta(days=5), now - timedelta(hours=3), None)
    with_ticket = IdentityCard(**{**base.__dict__, "tickets": (ticket,)})
    assert next_best_action(with_ticket, now).kind == "ticket_news"
    bill = BillView("B1", "S", "gas", date(2026, 9, 1), date(2026, 9, 30), date(2026, 10, 5),
                    date(2026, 10, 25), Decimal("10"), "unpaid", False)
    with_bill = IdentityCard(**{**with_ticket.__dict__, "bills": (bill,)})
    assert next_best_action(with_bill, now).kind == "overdue_bill"
    outage = OutageView("O1", "gas", ("20121",), now, now + timedelta(hours=2), "x")
    with_outage = IdentityCard(**{**with_bill.__dict__, "outages": (outage,)})
    assert next_best_action(with_outage, now).kind == "outage"


def test_one_time_codes_and_lock(demo_database, monkeypatch):
    from bot.crm import service

    sent = service.issue_otp("C1000001", "conv-1")
    assert sent.sent and sent.masked_destination == "m***@example.it"
    assert not service.issue_otp("C9999999", "conv-1").sent
    with session_scope() as s:
        outbox = s.execute(select(tables.OutboxMessage).order_by(tables.OutboxMessage.id.desc())
                           ).scalars().first()
        code = outbox.body.split("è ")[1][:6]
    assert outbox.destination == "maria.rossi@example.it"
    from bot.settings import get_settings

    assert not get_settings().outbox_log.exists()  # the demo's codes are in the table only
    assert not service.check_otp("C1000001", "other-conversation", code).ok
    assert service.check_otp("C1000001", "conv-1", code).ok
    assert not service.check_otp("C1000001", "conv-1", code).ok  # used once only
    service.issue_otp("C1000001", "conv-2")
    assert service.check_otp("C1000001", "conv-2", "000000").attempts_left == 2
    assert service.check_otp("C1000001", "conv-2", "000001").attempts_left == 1
    locked = service.check_otp("C1000001", "conv-2", "000002")
    assert not locked.ok and locked.locked_until is not None
    assert locked.locked_until - datetime.now(timezone.utc) > timedelta(minutes=14)
    again = service.issue_otp("C1000001", "conv-2")  # locks are per sender (conversation)
    assert not again.sent and again.locked_until is not None


def test_meter_reading_validation(demo_database):
    from bot.crm import service
    from bot.crm.card import read_identity_card

    card = read_identity_card("C1000001")
    supply = card.active_supplies[0]
    last = supply.last_reading
    today = last.date + timedelta(days=20)
    lower = service.check_reading("C1000001", supply.supply_id, last.value - 1, today)
    assert lower.problem == "lower" and lower.last_value == last.value
    crazy = service.check_reading("C1000001", supply.supply_id, last.value + 100000, today)
    assert crazy.problem == "implausible"
    other = service.check_reading("C1000002", supply.supply_id, last.value + 10, today)
    assert other.problem == "unknown_supply"  # not this customer's supply
    ok = service.store_reading("C1000001", supply.supply_id, last.value + 150, "web", today)
    assert ok.ok and ok.consumption == 150
    card = read_identity_card("C1000001")
    assert card.active_supplies[0].last_reading.source == "self"


def test_tickets_get_sequential_ids(demo_database):
    from bot.crm import service

    year = datetime.now(timezone.utc).year
    with session_scope() as s:  # this year's demo tickets
        seeded = [int(t.rsplit("-", 1)[1]) for t in s.execute(
            select(m.Ticket.ticket_id).where(m.Ticket.ticket_id.like(f"T-{year}-%"))).scalars()]
    first = max(seeded + [500000]) + 1  # the bot's tickets follow them
    a = service.open_ticket("C1000001", "callback", "x", "web")
    b = service.open_ticket("C1000001", "callback", "y", "web")
    assert (a.ticket_id, b.ticket_id) == (f"T-{year}-{first:06d}", f"T-{year}-{first + 1:06d}")


def test_validation_helpers():
    from bot.crm.validation import normalise_iban, normalise_phone, parse_reading

    assert normalise_phone("333 123 4567") == "+393331234567"
    assert normalise_phone("+39 02 1234 5678") == "+390212345678"
    assert normalise_phone("12") is None
    assert normalise_iban("it60 x054 2811 1010 0000 0123 456") == "IT60X0542811101000000123456"
    assert normalise_iban("IT61X0542811101000000123456") is None
    assert parse_reading("4821,5") == Decimal("4821.5")
    assert parse_reading("12.345") == Decimal("12345")
    assert parse_reading("12.345,5") == Decimal("12345.5")
    assert parse_reading("abc") is None


def test_identity_card_read_does_not_block_the_event_loop(demo_database):
    import asyncio

    from bot.crm.card import load_identity_card


    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        cards = await asyncio.gather(*(load_identity_card("C1000001") for _ in range(5)))
        task.cancel()
        return ticks, cards

    ticks, cards = asyncio.run(main())
    assert all(c.customer_code == "C1000001" for c in cards)
    assert ticks > 5  # the loop kept running while the cards were read
