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
from bot.crm.db import session_scope
from bot.handover import service as handovers
from bot.handover.models import Handover, HandoverTransition
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
    with session_scope() as db:  # a CX lead's work on A's and the stranger's conversations
        for sender in ("web-a", "stranger"):
            conv = db.execute(select(Conversation).where(Conversation.sender_id == sender)
                              .order_by(Conversation.id.desc())).scalars().first()
            db.add(ConversationTag(conversation_id=conv.id, tag="great"))
            db.add(ConversationNote(conversation_id=conv.id, author="lucia", text="ok"))
            msg = next(x for x in conv.messages if x.sender == "customer")
            db.add(MessageAnnotation(message_id=msg.id, intent="check_bill", language="it"))


A_SENDERS = ("web-a", "481516234", "late-a")
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
            contacts = [v for v in (c.email, c.phone) if v] if c else []
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
                "verification": db.scalar(select(func.count()).select_from(m.VerificationState)
                                          .where(m.VerificationState.customer_id == cid)),
                "outbox": db.scalar(select(func.count()).select_from(m.OutboxMessage)
                                    .where(m.OutboxMessage.destination.in_(contacts)))
                if contacts else 0,
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
                "channel_options": db.scalar(select(func.count()).select_from(m.ChannelOptions)
                                             .where(m.ChannelOptions.recipient == sender)),
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
        db.add(m.ChannelMessage(channel="whatsapp", message_id="wamid.old",
                                received_at=datetime.now(timezone.utc) - timedelta(days=8)))
        db.add(m.ChannelMessage(channel="whatsapp", message_id="wamid.new",
                                received_at=datetime.now(timezone.utc) - timedelta(days=1)))
        db.add(m.OutboxMessage(medium="email", destination="x@example.it", subject="s",
                               body="b", created_at=cutoff - timedelta(seconds=1)))
        db.add(m.ChannelOptions(channel="web", recipient="old", options="[]",
                                sent_at=cutoff - timedelta(seconds=1)))
        db.add(m.ChannelOptions(channel="web", recipient="new", options="[]",
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
        assert db.execute(select(m.ChannelMessage.message_id)).scalars().all() == ["wamid.new"]
        assert db.execute(select(m.ChannelOptions.recipient)).scalars().all() == ["new"]
        assert db.execute(select(Handover.conversation_id)).scalars().all() == ["span"]
        assert db.scalar(select(func.count()).select_from(HandoverTransition)) == 1
        assert db.scalar(select(func.count()).select_from(m.OneTimeCode)) == 1
        assert db.scalar(select(func.count()).select_from(m.OutboxMessage)) == 1  # the OTP's
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
