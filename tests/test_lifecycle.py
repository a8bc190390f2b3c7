"""Erasure of a customer and retention, on SQLite and PostgreSQL, with Rasa's own tracker store
and SQL event broker writing the tables they delete from, and the conversation log built from
the event stream the way the desk builds it."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest
from rasa.core.brokers.sql import SQLEventBroker
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import create_engine, func, select, text

from bot.analytics import ingest, lifecycle
from bot.analytics.models import (
    Conversation,
    ConversationMessage,
    ConversationNote,
    ConversationTag,
    ErasureRecord,
    MessageAnnotation,
)
from bot.crm import models as m
from bot.crm.service import verification_keys
from bot.handover import service as handovers
from bot.handover.models import Handover, HandoverTransition
from bot.persistence import tables
from bot.persistence.db import session_scope
from bot.settings import get_settings, reset_settings
from tests.conftest import create_pg_database, drop_pg_database, pg_url

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def _customer(code: str, first: str, last: str, email: str, phone: str, telegram: str,
              supply: str, bill: str, ticket: str) -> dict:
    return {
        "customer_code": code, "first_name": first, "last_name": last, "language": "it",
        "persona": "family", "vip": False, "email": email, "phone": phone,
        "tax_code": None, "preferred_channel": "web", "paperless": False,
        "direct_debit_iban": None,
        "identities": [{"channel": "telegram", "external_id": telegram, "verified": True}],
        "supplies": [{"supply_id": supply, "type": "electricity", "address": "Via Verdi 3",
                      "city": "Milano", "postcode": "20121", "tariff": "Luce Casa",
                      "unit_price_eur": "0.1200", "status": "active",
                      "start_date": "2022-01-01", "end_date": None,
                      "readings": [{"date": "2026-01-31", "value": "100", "source": "actual"}]}],
        "bills": [{"number": bill, "supply_id": supply, "period_start": "2026-01-01",
                   "period_end": "2026-01-31", "issue_date": "2026-02-05",
                   "due_date": "2026-02-25", "amount_eur": "50.00", "status": "unpaid",
                   "estimated": False}],
        "tickets": [{"ticket_id": ticket, "kind": "request", "status": "open",
                     "subject": "Richiesta", "channel": "web",
                     "opened_at": "2026-02-01T10:00:00+01:00", "updated_at": None,
                     "eta": None}],
        "interactions": [{"at": "2026-02-02T10:00:00+01:00", "channel": "web",
                          "topic": "check_bill", "outcome": "resolved",
                          "summary": f"{first} chiedeva della bolletta"}],
    }


A = _customer("C1000001", "Maria", "Rossi", "maria.rossi@example.it", "+393331234567",
              "481516234", "IT001E00000001", "B2026-0000001", "T-2026-000001")
B = _customer("C1000002", "Giuseppe", "Bianchi", "giuseppe.bianchi@example.it",
              "+393339876543", "999888777", "IT001E00000002", "B2026-0000002",
              "T-2026-000002")


@pytest.fixture
def rasa_stores(database, monkeypatch, tmp_path):
    """Rasa's SQL tracker store (with its SQL event broker) on the same backend as `database`;
    the settings point at both."""
    created = []
    if database.startswith("sqlite"):
        tracker_url = f"sqlite:///{tmp_path / 'rasa-tracker.db'}"
        events_url = f"sqlite:///{tmp_path / 'rasa-events.db'}"
        broker = SQLEventBroker(dialect="sqlite", db=str(tmp_path / "rasa-events.db"))
        store_args = {"dialect": "sqlite", "db": str(tmp_path / "rasa-tracker.db")}
    else:
        tracker_db, events_db = create_pg_database(), create_pg_database()
        created = [tracker_db, events_db]
        tracker_url, events_url = pg_url(tracker_db), pg_url(events_db)
        pg = {"dialect": "postgresql", "host": "127.0.0.1", "port": 5432,
              "username": "postgres"}
        broker = SQLEventBroker(db=events_db, **pg)
        store_args = {"db": tracker_db, **pg}
    monkeypatch.setenv("TRACKER_DATABASE_URL", tracker_url)
    monkeypatch.setenv("EVENTS_DATABASE_URL", events_url)
    reset_settings()
    stores = {"with_broker": SQLTrackerStore(event_broker=broker, **store_args),
              "tracker_only": SQLTrackerStore(**store_args)}
    yield stores
    for store in stores.values():
        store.engine.dispose()
    broker.engine.dispose()
    lifecycle._engine.cache_clear()
    for name in created:
        drop_pg_database(name)


def _session(start: float, texts: list[str], code: str | None = None,
             channel: str = "rest") -> list:
    events = [ActionExecuted("action_session_start", timestamp=start),
              SessionStarted(timestamp=start + 0.001),
              ActionExecuted("action_listen", timestamp=start + 0.002)]
    t = start + 1
    if code:
        events.append(SlotSet("customer_code", code, timestamp=t))
        t += 1
    for said in texts:
        events.append(UserUttered(said, {"name": "check_bill", "confidence": 0.9},
                                  timestamp=t, input_channel=channel))
        events.append(BotUttered(f"risposta a: {said}", timestamp=t + 0.5))
        events.append(ActionExecuted("action_listen", timestamp=t + 0.6))
        t += 1
    return events


def _save(store: SQLTrackerStore, sender: str, events: list) -> None:
    tracker = DialogueStateTracker.from_events(sender, events)
    asyncio.run(store.save(tracker))


def _count(url: str, sql: str, **params) -> int:
    engine = create_engine(url, future=True)
    try:
        with engine.connect() as c:
            return int(c.execute(text(sql), params).scalar_one())
    finally:
        engine.dispose()


def _events(url: str, sender: str) -> int:
    return _count(url, "SELECT COUNT(*) FROM events WHERE sender_id = :s", s=sender)


def _old_outbox_log(*destinations: str) -> None:
    """Lines of `var/outbox.log` as the embedded profile once wrote it (time, medium,
    destination, body with the code): no longer written, but an old file may still be there."""
    log = get_settings().outbox_log
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as fh:
        for to in destinations:
            fh.write(f"2026-01-01T10:00:00+00:00\t{'email' if '@' in to else 'sms'}\t{to}\t"
                     f"Luce Nord Energia: il tuo codice di verifica è 123456.\n")


def _seed(stores) -> None:
    """Customers A and B with everything the product keeps of a customer; conversations of A
    on the web (an anonymous session, then identified), on Telegram (recognised by the
    identity only), one only in the tracker store; B's; an anonymous stranger's."""
    from bot.channel_state import remember_options
    from bot.crm.importer import apply, validate
    from bot.crm.service import issue_otp

    doc = {"customers": [A, B], "outages": []}
    assert validate(doc) == []
    with session_scope() as db:
        apply(db, doc)
    t0 = (NOW - timedelta(days=2)).timestamp()
    with_broker = stores["with_broker"]
    _save(with_broker, "web-a", _session(t0, ["ciao"]) + _session(
        t0 + 100, ["mi chiamo Maria Rossi, la bolletta?"], code="C1000001"))
    _save(with_broker, "481516234", _session(t0 + 200, ["la mia bolletta"], channel="telegram"))
    _save(stores["tracker_only"], "late-a", _session(t0 + 300, ["ancora io"], code="C1000001"))
    _save(with_broker, "web-b", _session(t0 + 400, ["bolletta di Giuseppe"], code="C1000002"))
    _save(with_broker, "999888777", _session(t0 + 500, ["ciao"], channel="telegram"))
    _save(with_broker, "stranger", _session(t0 + 600, ["quanto costa la luce?"]))
    ingest.sync_all()
    for code, sender in (("C1000001", "web-a"), ("C1000002", "web-b")):
        assert issue_otp(code, sender).sent
        remember_options("telegram", {"C1000001": "481516234", "C1000002": "999888777"}[code],
                         [{"title": "Sì", "payload": "/affirm"}])
        q = handovers.enqueue(conversation_id=sender, channel="web", input_channel="rest",
                              language="it", reason="request_human", skill="billing",
                              customer_code=code, customer_name="Name Surname", persona="family",
                              vip=False, summary="s", context_pack={"card": {"code": code}},
                              agents=1)
        handovers.finish(q.handover_id, "abandoned", "cancelled")
    remember_options("web", "stranger", [{"title": "No", "payload": "/deny"}])
    _old_outbox_log(A["email"], B["email"])
    with session_scope() as db:  # rows of the verification state before its counters
        for code in ("C1000001", "C1000002"):
            cid = db.scalar(select(m.Customer.id).where(m.Customer.customer_code == code))
            db.add(m.VerificationState(customer_id=cid, failed_attempts=1))
    with session_scope() as db:  # a CX lead's work on A's and the stranger's conversations
        for sender in ("web-a", "stranger"):
            conv = db.execute(select(Conversation).where(Conversation.sender_id == sender)
                              .order_by(Conversation.id.desc())).scalars().first()
            db.add(ConversationTag(conversation_id=conv.id, tag="great"))
            db.add(ConversationNote(conversation_id=conv.id, author="lucia", text="ok"))
            msg = next(x for x in conv.messages if x.sender == "customer")
            db.add(MessageAnnotation(message_id=msg.id, intent="check_bill", language="it"))


A_SENDERS = ("web-a", "481516234", "late-a")
CONTACTS = {"C1000001": A, "C1000002": B}
OTHER_SENDERS = ("web-b", "999888777", "stranger")


def _footprint(codes=("C1000001", "C1000002"), senders=A_SENDERS + OTHER_SENDERS) -> dict:
    """Rows per customer / sender in every table that holds anything of theirs."""
    s = get_settings()
    out = {}
    with session_scope() as db:
        for code in codes:
            c = db.execute(select(m.Customer).where(m.Customer.customer_code == code)
                           ).scalar_one_or_none()
            cid = c.id if c else -1
            supplies = select(m.Supply.id).where(m.Supply.customer_id == cid)
            # the seeded contacts: still known once the customer row is gone
            contacts = [CONTACTS[code]["email"], CONTACTS[code]["phone"]]
            out[code] = {
                "customers": int(c is not None),
                "identities": db.scalar(select(func.count()).select_from(m.Identity)
                                        .where(m.Identity.customer_id == cid)),
                "supplies": db.scalar(select(func.count()).select_from(m.Supply)
                                      .where(m.Supply.customer_id == cid)),
                "readings": db.scalar(select(func.count()).select_from(m.Reading)
                                      .where(m.Reading.supply_pk.in_(supplies))),
                "bills": db.scalar(select(func.count()).select_from(m.Bill)
                                   .where(m.Bill.customer_id == cid)),
                "tickets": db.scalar(select(func.count()).select_from(m.Ticket)
                                     .where(m.Ticket.customer_id == cid)),
                "interactions": db.scalar(select(func.count()).select_from(m.Interaction)
                                          .where(m.Interaction.customer_id == cid)),
                "one_time_codes": db.scalar(select(func.count()).select_from(m.OneTimeCode)
                                            .where(m.OneTimeCode.customer_id == cid)),
                "verification_states": db.scalar(
                    select(func.count()).select_from(m.VerificationState)
                    .where(m.VerificationState.customer_id == cid)),
                "verification_counters": db.scalar(
                    select(func.count()).select_from(m.VerificationCounter)
                    .where(m.VerificationCounter.key.in_(verification_keys(code, contacts)))),
                "outbox": db.scalar(select(func.count()).select_from(tables.OutboxMessage)
                                    .where(tables.OutboxMessage.destination.in_(contacts))),
                "handovers": db.scalar(select(func.count()).select_from(Handover)
                                       .where(Handover.customer_code == code)),
                "conversations": db.scalar(select(func.count()).select_from(Conversation)
                                           .where(Conversation.customer_code == code)),
            }
        for sender in senders:
            convs = select(Conversation.id).where(Conversation.sender_id == sender)
            out[sender] = {
                "conversations": db.scalar(select(func.count()).select_from(Conversation)
                                           .where(Conversation.sender_id == sender)),
                "messages": db.scalar(select(func.count()).select_from(ConversationMessage)
                                      .where(ConversationMessage.conversation_id.in_(convs))),
                "tags": db.scalar(select(func.count()).select_from(ConversationTag)
                                  .where(ConversationTag.conversation_id.in_(convs))),
                "notes": db.scalar(select(func.count()).select_from(ConversationNote)
                                   .where(ConversationNote.conversation_id.in_(convs))),
                "channel_options": db.scalar(select(func.count()).select_from(tables.ChannelOptions)
                                             .where(tables.ChannelOptions.recipient == sender)),
                "handovers": db.scalar(select(func.count()).select_from(Handover)
                                       .where(Handover.conversation_id == sender)),
                "tracker_events": _events(s.tracker_database_url, sender),
                "broker_events": _events(s.events_database_url, sender),
            }
        out["annotations"] = db.scalar(select(func.count()).select_from(MessageAnnotation))
        out["transitions"] = db.scalar(select(func.count()).select_from(HandoverTransition))
        out["records"] = db.scalar(select(func.count()).select_from(ErasureRecord))
    log = s.outbox_log
    out["outbox_log"] = {code: sum(code_contact in line
                                   for line in log.read_text().splitlines())
                         for code, code_contact in (("C1000001", A["email"]),
                                                    ("C1000002", B["email"]))}
    return out


def test_erase_customer_removes_everything_of_theirs_and_nothing_else(database, rasa_stores):
    _seed(rasa_stores)
    before = _footprint()
    # the seed really put A's data everywhere, or the test proves nothing
    assert all(n > 0 for k, n in before["C1000001"].items()), before["C1000001"]
    for sender in A_SENDERS:
        assert before[sender]["tracker_events"] > 0
    assert before["web-a"]["conversations"] == 2  # the anonymous session, then identified
    assert before["481516234"]["conversations"] == 1 and before["late-a"]["conversations"] == 0
    assert before["outbox_log"]["C1000001"] == 1

    result = lifecycle.erase_customer("C1000001", requested_by="dpo",
                                      reference=f"REQ-42 Maria Rossi {A['email']} C1000001")
    assert result.found
    after = _footprint()
    assert all(n == 0 for n in after["C1000001"].values()), after["C1000001"]
    for sender in A_SENDERS:
        assert all(n == 0 for n in after[sender].values()), (sender, after[sender])
    assert after["outbox_log"]["C1000001"] == 0
    # nobody else lost anything
    assert after["C1000002"] == before["C1000002"]
    for sender in OTHER_SENDERS:
        assert after[sender] == before[sender], sender
    assert after["outbox_log"]["C1000002"] == before["outbox_log"]["C1000002"] == 1
    assert after["annotations"] == before["annotations"] - 1
    assert after["transitions"] == before["transitions"] - 2  # queued, abandoned of A's

    assert result.conversations == 3
    assert result.tracker_events == sum(before[s]["tracker_events"] for s in A_SENDERS)
    assert result.broker_events == sum(before[s]["broker_events"] for s in A_SENDERS)
    with session_scope() as db:
        record = db.execute(select(ErasureRecord)).scalar_one()
        assert (record.kind, record.reference, record.requested_by) == (
            "customer", "REQ-42 [NAME] [EMAIL] [CUSTOMER_CODE]", "dpo")
        assert record.conversations == 3
        assert record.tracker_events == result.tracker_events + result.broker_events
        assert record.history_rows == result.history_rows >= 12
        # no personal data in the record
        stored = json.dumps({c.name: str(getattr(record, c.name))
                             for c in ErasureRecord.__table__.columns})
        for value in ("C1000001", "Maria", "Rossi", A["email"], A["phone"], "481516234",
                      "web-a", "late-a", A["supplies"][0]["supply_id"]):
            assert value.lower() not in stored.lower()


def test_erase_is_idempotent_and_unknown_code_changes_nothing(database, rasa_stores, capsys):
    from bot.__main__ import main

    _seed(rasa_stores)
    assert main(["erase-customer", "C1000001", "--reference", "REQ-1", "--by", "dpo"]) == 0
    out = capsys.readouterr().out
    assert "erased C1000001" in out and "3 conversation(s)" in out
    once = _footprint()
    assert once["records"] == 1
    # again: nothing left to find, nothing changes, no second record
    assert main(["erase-customer", "C1000001"]) == 1
    assert "no such customer" in capsys.readouterr().err
    assert _footprint() == once
    assert main(["erase-customer", "C9999999"]) == 1
    assert _footprint() == once


def test_erase_finishes_leftovers_of_an_interrupted_run(database, rasa_stores):
    """A conversation of the code that reached the log after the customer row was gone (or a
    tracker the erasure could not reach then) is still erased by running it again."""
    _seed(rasa_stores)
    assert lifecycle.erase_customer("C1000001").found
    _save(rasa_stores["with_broker"], "web-a2",
          _session((NOW - timedelta(hours=1)).timestamp(), ["sono io"], code="C1000001"))
    ingest.sync_all()
    assert _footprint(senders=("web-a2",))["web-a2"]["conversations"] == 1
    result = lifecycle.erase_customer("C1000001")
    assert result.found and result.conversations == 1 and result.tracker_events > 0
    assert all(n == 0 for n in _footprint(senders=("web-a2",))["web-a2"].values())
    with session_scope() as db:
        assert db.scalar(select(func.count()).select_from(ErasureRecord)) == 2


def test_erased_words_leave_the_full_text_index(database, rasa_stores):
    _seed(rasa_stores)
    lifecycle.erase_customer("C1000001")
    url = get_settings().database_url
    if url.startswith("sqlite"):
        n = _count(url, "SELECT COUNT(*) FROM conversation_messages_fts "
                        "WHERE conversation_messages_fts MATCH 'bolletta'")
        # only B's message and the bot's reply to it mention it now
        assert n == _count(url, "SELECT COUNT(*) FROM conversation_messages "
                                "WHERE lower(text) LIKE '%bolletta%'") == 2
        assert _count(url, "SELECT COUNT(*) FROM conversation_messages_fts "
                           "WHERE conversation_messages_fts MATCH 'ciao'") == 2  # B's telegram
    else:
        assert _count(url, "SELECT COUNT(*) FROM conversation_messages WHERE "
                           "to_tsvector('simple', text) @@ to_tsquery('simple', 'bolletta')") == 2


def test_erase_removes_what_was_sent_to_every_contact_they_ever_had(database, rasa_stores):
    """A customer changes e-mail twice (in a conversation, then with an import of the
    company's data, which changes the phone too) and gets a one-time code at each address:
    erasure leaves no outbox row, no line of an old outbox log and no contact-history row of
    any of them, and B's are untouched."""
    from bot.crm.importer import apply
    from bot.crm.service import issue_otp, set_email

    first, second, third = A["email"], "maria.r@example.com", "m.rossi@example.net"
    new_phone = "+393471112233"
    with session_scope() as db:
        apply(db, {"customers": [A, B], "outages": []})
    assert issue_otp("C1000001", "web-1").sent
    set_email("C1000001", second)
    assert issue_otp("C1000001", "web-2").sent
    with session_scope() as db:
        apply(db, {"customers": [{**A, "email": third, "phone": new_phone}], "outages": []})
    assert issue_otp("C1000001", "web-3").sent
    assert issue_otp("C1000002", "web-b").sent
    _old_outbox_log(first, second, A["phone"], third, B["email"])
    hers = (first, second, third, A["phone"], new_phone)
    with session_scope() as db:
        cid = db.scalar(select(m.Customer.id).where(m.Customer.customer_code == "C1000001"))
        assert db.execute(select(tables.OutboxMessage.destination).order_by(tables.OutboxMessage.id)
                          ).scalars().all() == [first, second, third, B["email"]]
        history = db.execute(select(m.ContactHistory.kind, m.ContactHistory.value,
                                    m.ContactHistory.valid_from, m.ContactHistory.valid_until)
                             .where(m.ContactHistory.customer_id == cid)
                             .order_by(m.ContactHistory.id)).all()
    assert [(kind, value, until is None) for kind, value, _, until in history] == [
        ("email", first, False), ("phone", A["phone"], False), ("email", second, False),
        ("email", third, True), ("phone", new_phone, True)]
    emails = [row for row in history if row[0] == "email"]
    assert emails[1][2] == emails[0][3] and emails[2][2] == emails[1][3]  # one after the other

    result = lifecycle.erase_customer("C1000001")
    assert result.found
    assert result.history["outbox"] == 3 and result.history["contact_history"] == 5
    with session_scope() as db:
        assert db.execute(select(tables.OutboxMessage.destination)).scalars().all() == [B["email"]]
        assert db.scalar(select(func.count()).select_from(m.ContactHistory)
                         .where(m.ContactHistory.customer_id == cid)) == 0
        assert sorted(db.execute(select(m.ContactHistory.value)).scalars().all()) == sorted(
            [B["email"], B["phone"]])  # B's own, untouched
    log = get_settings().outbox_log.read_text(encoding="utf-8")
    for value in hers:
        assert value not in log
    assert log.count(B["email"]) == 1


def test_contact_history_migration_records_the_current_contacts(database):
    """Customers already there when the contact history arrives (migration 0005): their
    current e-mail and phone are recorded, in force since the customer was created."""
    from alembic import command

    from bot.persistence import db as crm_db
    from bot.persistence.db import alembic_config

    command.downgrade(alembic_config(database), "0004")
    crm_db.get_engine(database).dispose()
    created = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    with session_scope() as db:
        db.execute(text("INSERT INTO customers (customer_code, first_name, last_name, language, "
                        "persona, vip, email, phone, preferred_channel, paperless, created_at, "
                        "updated_at) VALUES ('C1000001', 'Maria', 'Rossi', 'it', 'family', "
                        ":f, :email, :phone, 'web', :f, :at, :at), ('C1000002', 'Giuseppe', "
                        "'Bianchi', 'it', 'family', :f, NULL, :phone2, 'web', :f, :at, :at)"),
                   {"f": False, "email": A["email"], "phone": A["phone"], "phone2": B["phone"],
                    "at": created.replace(tzinfo=None)})
    command.upgrade(alembic_config(database), "head")
    crm_db.get_engine(database).dispose()
    with session_scope() as db:
        rows = db.execute(select(m.Customer.customer_code, m.ContactHistory.kind,
                                 m.ContactHistory.value, m.ContactHistory.valid_from,
                                 m.ContactHistory.valid_until)
                          .join(m.Customer, m.Customer.id == m.ContactHistory.customer_id)
                          .order_by(m.Customer.customer_code, m.ContactHistory.kind)).all()
    assert [tuple(r) for r in rows] == [
        ("C1000001", "email", A["email"], created, None),
        ("C1000001", "phone", A["phone"], created, None),
        ("C1000002", "phone", B["phone"], created, None)]


def _start(ts: float) -> list:
    return [ActionExecuted("action_session_start", timestamp=ts),
            SessionStarted(timestamp=ts + 0.001),
            ActionExecuted("action_listen", timestamp=ts + 0.002)]


def _said(said: str, ts: float, metadata: dict | None = None) -> list:
    return [UserUttered(said, {"name": "check_bill", "confidence": 0.9}, timestamp=ts,
                        input_channel="rest", metadata=metadata),
            BotUttered(f"risposta a: {said}", timestamp=ts + 0.5),
            ActionExecuted("action_listen", timestamp=ts + 0.6)]


def test_erase_finds_conversations_identified_only_by_their_metadata(database, rasa_stores):
    """Conversations in which no slot names the customer, identified only by the site's
    customer token (as events carried it before channels replaced it: here expired, signed
    with a key since rotated) or by the customer a channel proved (`metadata.customer`), are
    erased whole, the anonymous messages before it included, with the one-time codes asked
    there; other customers' conversations stay."""
    from bot.crm.importer import apply
    from bot.crm.service import issue_otp
    from bot.tokens import make_customer_token

    with session_scope() as db:
        apply(db, {"customers": [A, B], "outages": []})
    t0 = (NOW - timedelta(hours=3)).timestamp()
    store = rasa_stores["with_broker"]
    typed = "ciao sono Maria Rossi, 3471112233"
    token = make_customer_token("C1000001", minutes=-60, secret="a key since rotated")
    _save(store, "tok-a", _start(t0) + _said(typed, t0 + 1)
          + _said("la bolletta?", t0 + 2, {"customer_token": token}))
    _save(store, "proved-a", _start(t0 + 10) + _said(typed, t0 + 11)
          + _said("la bolletta?", t0 + 12, {"customer": {"code": "C1000001"}}))
    _save(store, "tok-b", _start(t0 + 20) + _said("la bolletta?", t0 + 21, {
        "customer_token": make_customer_token("C1000002", secret="another key")}))
    _save(store, "proved-b", _start(t0 + 30) + _said("la bolletta?", t0 + 31,
                                                     {"customer": {"code": "C1000002"}}))
    _save(store, "invalid", _start(t0 + 40) + _said("la bolletta?", t0 + 41,
                                                    {"customer": {"invalid": True}}))
    ingest.sync_all()
    assert issue_otp("C1000002", "tok-a").sent  # before the token, B's code was typed there
    s = get_settings()
    hers, others = ("tok-a", "proved-a"), ("tok-b", "proved-b", "invalid")
    before = {sender: (_events(s.tracker_database_url, sender),
                       _events(s.events_database_url, sender)) for sender in hers + others}
    assert all(t > 0 and b > 0 for t, b in before.values())
    with session_scope() as db:
        logged = dict(db.execute(select(Conversation.sender_id, Conversation.customer_code)
                                 ).all())
    assert all(logged[sender] is None for sender in hers)  # the log does not know whose
    for url in (s.tracker_database_url, s.events_database_url):
        assert _count(url, "SELECT COUNT(*) FROM events WHERE data LIKE '%3471112233%'") > 0

    result = lifecycle.erase_customer("C1000001")
    assert result.found and result.conversations == 2
    for sender in hers:
        assert _events(s.tracker_database_url, sender) == 0
        assert _events(s.events_database_url, sender) == 0
    for sender in others:
        assert (_events(s.tracker_database_url, sender),
                _events(s.events_database_url, sender)) == before[sender]
    for url in (s.tracker_database_url, s.events_database_url):
        for value in ("3471112233", "Maria Rossi", token):
            assert _count(url, "SELECT COUNT(*) FROM events WHERE data LIKE :v",
                          v=f"%{value}%") == 0
    with session_scope() as db:
        assert sorted(db.execute(select(Conversation.sender_id)).scalars().all()) == sorted(
            others)
        assert db.scalar(select(func.count()).select_from(m.OneTimeCode)) == 0
        assert db.scalar(select(func.count()).select_from(m.Customer)
                         .where(m.Customer.customer_code == "C1000002")) == 1


# ---- retention -----------------------------------------------------------------------------


def test_purge_cutoff_is_exact(database, rasa_stores):
    from bot.crm.service import issue_otp

    days = 30
    cutoff = NOW - timedelta(days=days)
    store = rasa_stores["with_broker"]
    c = cutoff.timestamp()
    # old: its last event 1 s before the cutoff
    _save(store, "old", _session(c - 3600, ["vecchia"])[:-1]
          + [ActionExecuted("action_listen", timestamp=c - 1)])
    # kept: its last event 1 s after the cutoff, begun before it (spans the cutoff)
    _save(store, "span", _session(c - 86400 * 3, ["molto vecchia"])
          + _session(c - 60, ["a cavallo"])[:-1]
          + [ActionExecuted("action_listen", timestamp=c + 1)])
    _save(store, "new", _session(NOW.timestamp() - 60, ["recente"]))
    ingest.sync_all()
    with session_scope() as db:
        last = dict(db.execute(select(Conversation.sender_id, Conversation.last_event_at)
                               .where(Conversation.sender_id == "old")).all())
        assert last["old"] == cutoff - timedelta(seconds=1)
        spans = db.execute(select(Conversation.session_start, Conversation.last_event_at)
                           .where(Conversation.sender_id == "span")
                           .order_by(Conversation.session_start)).all()
        assert len(spans) == 2 and spans[1][1] == cutoff + timedelta(seconds=1)
    s = get_settings()
    span_before = {"old_session": _count(s.tracker_database_url,
                                         "SELECT COUNT(*) FROM events WHERE sender_id = 'span' "
                                         "AND timestamp < :b", b=spans[1][0]),
                   "kept_session": _count(s.tracker_database_url,
                                          "SELECT COUNT(*) FROM events WHERE sender_id = 'span' "
                                          "AND timestamp >= :b", b=spans[1][0])}
    new_events = _events(s.tracker_database_url, "new")
    with session_scope() as db:  # other things past their time, and not yet
        db.add(tables.ChannelMessage(channel="whatsapp", message_id="wamid.old",
                                received_at=datetime.now(timezone.utc) - timedelta(days=8)))
        db.add(tables.ChannelMessage(channel="whatsapp", message_id="wamid.new",
                                received_at=datetime.now(timezone.utc) - timedelta(days=1)))
        db.add(tables.OutboxMessage(medium="email", destination="x@example.it", subject="s",
                               body="b", created_at=cutoff - timedelta(seconds=1)))
        db.add(tables.ChannelOptions(channel="web", recipient="old", options="[]",
                                sent_at=cutoff - timedelta(seconds=1)))
        db.add(tables.ChannelOptions(channel="web", recipient="new", options="[]",
                                sent_at=cutoff + timedelta(seconds=1)))
        for sender, at, state in (("old", cutoff - timedelta(seconds=1), "closed"),
                                  ("span", cutoff + timedelta(seconds=1), "closed")):
            h = Handover(conversation_id=sender, channel="web", language="it", reason="r",
                         skill="billing", state=state, created_at=at, queued_at=at,
                         customer_name="X")
            db.add(h)
            db.flush()
            db.add(HandoverTransition(handover_id=h.id, state=state, at=at))
    from bot.crm.importer import apply

    with session_scope() as db:
        apply(db, {"customers": [B], "outages": []})
    assert issue_otp("C1000002", "new").sent  # a code valid for 10 minutes: kept
    with session_scope() as db:
        db.add(m.OneTimeCode(customer_id=db.scalar(select(m.Customer.id)), conversation_id="x",
                             code_hash="h", sent_to="email", expires_at=NOW - timedelta(hours=1)))

    result = lifecycle.purge(days, requested_by="cron", now=NOW)
    assert result.cutoff == cutoff
    with session_scope() as db:
        left = db.execute(select(Conversation.sender_id).order_by(Conversation.sender_id)
                          ).scalars().all()
        assert left == ["new", "span"]  # the old session of "span" went, its newer one stayed
        assert db.execute(select(tables.ChannelMessage.message_id)).scalars().all() == ["wamid.new"]
        assert db.execute(select(tables.ChannelOptions.recipient)).scalars().all() == ["new"]
        assert db.execute(select(Handover.conversation_id)).scalars().all() == ["span"]
        assert db.scalar(select(func.count()).select_from(HandoverTransition)) == 1
        assert db.scalar(select(func.count()).select_from(m.OneTimeCode)) == 1
        assert db.scalar(select(func.count()).select_from(tables.OutboxMessage)) == 1  # the OTP's
        record = db.execute(select(ErasureRecord)).scalar_one()
        assert (record.kind, record.requested_by) == ("retention", "cron")
        assert record.conversations == result.conversations == 2
        assert record.tracker_events == result.tracker_events + result.broker_events
    assert _events(s.tracker_database_url, "old") == _events(s.events_database_url, "old") == 0
    assert _events(s.tracker_database_url, "span") == span_before["kept_session"]
    assert _events(s.events_database_url, "span") == span_before["kept_session"]
    assert _events(s.tracker_database_url, "new") == _events(s.events_database_url, "new") \
        == new_events
    assert result.tracker_events == result.broker_events == span_before["old_session"] + 6
    assert result.history == {"handover_transitions": 1, "handovers": 1, "one_time_codes": 1,
                              "outbox": 1, "channel_options": 1, "channel_messages": 1}

    # again: nothing more
    again = lifecycle.purge(days, now=NOW)
    assert (again.conversations, again.tracker_events, again.broker_events,
            again.history_rows) == (0, 0, 0, 0)


def test_purge_refuses_zero_days(database, rasa_stores, capsys, monkeypatch):
    from bot.__main__ import main

    with pytest.raises(ValueError):
        lifecycle.purge(0)
    assert main(["purge", "--days", "0"]) == 2
    assert "refusing" in capsys.readouterr().err
    monkeypatch.setenv("RETENTION_DAYS", "0")
    reset_settings()
    assert main(["purge"]) == 0
    assert "retention is off" in capsys.readouterr().out
    with session_scope() as db:
        assert db.scalar(select(func.count()).select_from(ErasureRecord)) == 0


def test_purge_command_uses_retention_days(database, rasa_stores, capsys, monkeypatch):
    from bot.__main__ import main

    _save(rasa_stores["with_broker"], "ancient",
          _session((NOW - timedelta(days=400)).timestamp(), ["vecchissima"]))
    _save(rasa_stores["with_broker"], "recent",
          _session((NOW - timedelta(days=300)).timestamp(), ["recente"]))
    ingest.sync_all()
    assert main(["purge"]) == 0  # RETENTION_DAYS defaults to 365
    out = capsys.readouterr().out
    assert "older than 365 days" in out and "1 conversation(s)" in out
    with session_scope() as db:
        assert db.execute(select(Conversation.sender_id)).scalars().all() == ["recent"]


def test_erasing_the_newest_events_does_not_let_sqlite_reuse_their_ids(tmp_path):
    """The desk and the conversation log read the event broker's table by id: after the newest
    conversation is erased, the next event must still get a higher id than any read before."""
    from sqlalchemy import create_engine, text

    from bot.analytics.lifecycle import _delete_events_of

    url = f"sqlite:///{tmp_path / 'events.db'}"
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text("CREATE TABLE events (id INTEGER NOT NULL, sender_id VARCHAR(255), "
                       "data TEXT, PRIMARY KEY (id))"))
        for i, sender in enumerate(["a", "a", "b", "b"], 1):
            c.execute(text("INSERT INTO events (sender_id, data) VALUES (:s, :d)"),
                      {"s": sender, "d": f'{{"event": "user", "text": "{i}"}}'})
    assert _delete_events_of(url, ["b"]) == 2
    with engine.begin() as c:
        c.execute(text("INSERT INTO events (sender_id, data) VALUES ('c', '{}')"))
        rows = c.execute(text("SELECT id, sender_id, data FROM events ORDER BY id")).all()
    assert [r[0] for r in rows if r[1] == "c"] == [5]  # not 3: ids 3 and 4 were read already
    assert not any("text" in r[2] for r in rows if r[1] in ("b", ""))  # nothing of b is left
    engine.dispose()


def test_the_migrations_build_the_tables_the_models_describe(database):
    """Every column, index and constraint of the models is made by a migration (Alembic's own
    comparison finds nothing to add or drop), on both databases. The SQLite full-text index of
    the conversation log (virtual tables made by migration 0004 with SQLite's own SQL) is no
    model's."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import bot.analytics.models  # noqa: F401
    import bot.handover.models  # noqa: F401
    import bot.persistence.tables  # noqa: F401
    from bot.persistence import db as crm_db
    from bot.persistence.types import Base

    def modelled(_object, name: str, type_: str, _reflected: bool, _compare_to) -> bool:
        return not (type_ == "table" and name.startswith("conversation_messages_fts"))

    with crm_db.get_engine(database).connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_object": modelled})
        assert compare_metadata(context, Base.metadata) == []
