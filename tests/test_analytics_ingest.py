"""The conversation log built from Rasa's event stream (bot.analytics.ingest), on SQLite and
PostgreSQL: sessions, turns, fallbacks, intents and stages, outcomes, CSAT, handovers, masking,
and a stream read exactly once through Rasa's own SQL event broker."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from bot.analytics import ingest
from bot.analytics.models import Conversation, ConversationMessage, StreamCursor
from bot.persistence.db import session_scope

T0 = 1_780_000_000.0  # 2026-05-28, a fixed instant


def user(text, intent, confidence=0.95, at=0.0, channel="rest", entities=()):
    return {"event": "user", "text": text, "timestamp": T0 + at, "input_channel": channel,
            "parse_data": {"intent": {"name": intent, "confidence": confidence},
                           "entities": list(entities)}}


def bot(text, at, utter_action="utter_x", **metadata):
    return {"event": "bot", "text": text, "timestamp": T0 + at,
            "metadata": {"utter_action": utter_action, **metadata}}


def action(name, at):
    return {"event": "action", "name": name, "timestamp": T0 + at}


def slot(name, value, at):
    return {"event": "slot", "name": name, "value": value, "timestamp": T0 + at}


def session(at):
    return [action("action_session_start", at), {"event": "session_started", "timestamp": T0 + at},
            action("action_listen", at)]


def apply(sender, events):
    with session_scope() as db:
        ingest.apply_events(db, [(sender, e) for e in events])


def conversations(sender):
    with session_scope() as db:
        rows = db.execute(select(Conversation).where(Conversation.sender_id == sender)
                          .order_by(Conversation.session_start)).scalars().all()
        for c in rows:  # loaded while the session is open
            c.messages, c.intents  # noqa: B018
        return rows


def test_a_session_is_one_record_with_turns_fallbacks_intents_and_stages(database):
    apply("s1", session(0) + [
        user("ciao", "greet", at=1), action("action_greet", 1.1), bot("Ciao!", 1.2),
        user("asdfg", "nlu_fallback", confidence=0.31, at=5),
        action("action_nlu_fallback", 5.1), bot("Non ho capito.", 5.2),
        user("quanto devo pagare?", "check_bill", at=9, channel="whatsapp"),
        user("e come pago?", "pay_bill", at=12, channel="whatsapp"),
        user("quanto devo pagare ancora?", "check_bill", at=15, channel="whatsapp"),
    ])
    [c] = conversations("s1")
    assert (c.turns, c.fallbacks, c.channel, c.outcome, c.ended) == (5, 1, "whatsapp",
                                                                    "contained", False)
    assert {(i.intent, i.stage, i.count) for i in c.intents} == {
        ("greet", "conversation", 1), ("check_bill", "self_care", 2), ("pay_bill", "self_care", 1)}
    senders = [m.sender for m in c.messages]
    assert senders == ["customer", "action", "bot", "customer", "action", "bot", "customer",
                       "customer", "customer"]  # action_listen/session_start are not lines
    fallback = c.messages[3]
    assert (fallback.intent, fallback.confidence, fallback.fallback) == ("nlu_fallback", 0.31,
                                                                        True)
    assert c.started_at == datetime.fromtimestamp(T0, timezone.utc)
    assert c.last_event_at == datetime.fromtimestamp(T0 + 15, timezone.utc)


def test_a_new_session_ends_the_previous_one_and_carries_its_slots(database):
    apply("s2", session(0) + [slot("language", "en", 0.5), slot("persona", "digital", 0.5),
                              user("hi", "greet", at=1)])
    apply("s2", session(4000) + [user("my bill", "check_bill", at=4001)])
    first, second = conversations("s2")
    assert first.ended and first.ended_at == datetime.fromtimestamp(T0 + 1, timezone.utc)
    assert not second.ended
    assert (second.language, second.persona, second.turns) == ("en", "digital", 1)


def test_outcomes_abandoned_needs_an_ended_session_with_an_open_form_or_a_fallback(database):
    apply("form", session(0) + [user("autolettura", "submit_meter_reading", at=1),
                                {"event": "active_loop", "name": "meter_reading_form",
                                 "timestamp": T0 + 1.2}])
    apply("done", session(0) + [user("autolettura", "submit_meter_reading", at=1),
                                {"event": "active_loop", "name": "meter_reading_form",
                                 "timestamp": T0 + 1.2},
                                user("12345", "inform", at=3),
                                {"event": "active_loop", "name": None, "timestamp": T0 + 3.1}])
    apply("lost", session(0) + [user("blabla", "nlu_fallback", confidence=0.2, at=1)])
    before = datetime.fromtimestamp(T0 + 60, timezone.utc)
    assert ingest.sweep(now=before, idle_minutes=30) == 0  # not idle yet: nothing ends
    assert conversations("form")[0].outcome == "contained"
    assert ingest.sweep(now=before + timedelta(minutes=31), idle_minutes=30) == 3
    assert [conversations(s)[0].outcome for s in ("form", "done", "lost")] == [
        "abandoned", "contained", "abandoned"]
    # the customer comes back to the same session: it goes on, no longer abandoned
    apply("lost", [user("la mia bolletta", "check_bill", at=120)])
    c = conversations("lost")[0]
    assert (c.ended, c.outcome, c.turns) == (False, "contained", 2)


def test_csat_and_comment(database):
    apply("rate", session(0) + [user("ciao", "greet", at=1),
                                user("4 stelle, molto veloce", "give_feedback", at=5),
                                slot("rating", 4, 5.2)])
    c = conversations("rate")[0]
    assert (c.csat, c.csat_comment) == (4, "4 stelle, molto veloce")
    apply("bad", session(0) + [user("7", "give_feedback", at=1), slot("rating", 7, 1.1)])
    assert conversations("bad")[0].csat is None  # out of range: not a rating
    # a rating button sends its payload as the text: a rating, not a comment
    apply("button", session(0) + [user('/give_feedback{"rating": "2"}', "give_feedback", at=1),
                                  slot("rating", "2", 1.1)])
    assert (conversations("button")[0].csat, conversations("button")[0].csat_comment) == (2, None)
    apply("bare", session(0) + [user("5 stelle!", "give_feedback", at=1), slot("rating", 5, 1.1)])
    assert (conversations("bare")[0].csat, conversations("bare")[0].csat_comment) == (5, None)
    # a comment after a button rating is kept, and a later button press does not overwrite it
    apply("both", session(0) + [user("3 stars, the bill answer was slow", "give_feedback", at=1),
                                slot("rating", 3, 1.1),
                                user('/give_feedback{"rating": "3"}', "give_feedback", at=2)])
    c = conversations("both")[0]
    assert (c.csat, c.csat_comment) == (3, "3 stars, the bill answer was slow")


def test_a_handover_marks_the_outcome_segment_and_figures(database):
    from bot.handover import service as queue

    apply("h1", session(0) + [user("voglio un operatore", "request_human", at=1),
                              action("action_request_human", 1.1)])
    h = queue.enqueue(conversation_id="h1", channel="web", input_channel="rest", language="it",
                      reason="request_human", skill="billing", customer_code=None,
                      customer_name="", persona=None, vip=False, summary="", context_pack={},
                      agents=1)
    from bot.handover.models import Handover

    with session_scope() as db:  # queued at the time of the events above
        db.get(Handover, h.handover_id).created_at = datetime.fromtimestamp(T0 + 1.2, timezone.utc)
    apply("h1", [{"event": "pause", "timestamp": T0 + 1.3},
                 user("c'è qualcuno?", "greet", at=30),
                 bot("Sono Giulia, come posso aiutarla?", 40, utter_action=None, agent="Giulia"),
                 {"event": "resume", "timestamp": T0 + 90},
                 user("grazie", "thank_you", at=95)])
    c = conversations("h1")[0]
    assert (c.outcome, c.handed_over, c.handover_reason, c.handover_state) == (
        "handover", True, "request_human", "queued")
    assert c.handover_id == h.handover_id
    assert c.turns == 2  # what the customer said to the agent is not a turn of the bot's
    lines = [(m.sender, m.handover, m.agent) for m in c.messages if m.sender != "action"]
    assert lines == [("customer", False, None), ("event", True, None),
                     ("customer", True, None), ("agent", True, "Giulia"),
                     ("event", False, None), ("customer", False, None)]


def test_no_agent_available_counts_as_a_handover_request(database):
    apply("na", session(0) + [user("operatore", "request_human", at=1),
                              action("action_request_human", 1.1),
                              bot("Nessun operatore disponibile", 1.2,
                                  utter_action="utter_handover_no_agent")])
    c = conversations("na")[0]
    assert (c.outcome, c.handover_state, c.handover_reason) == ("handover", "unavailable",
                                                                "request_human")


def test_personal_data_is_masked_before_it_is_stored_also_retroactively(demo_database):
    apply("pii", session(0) + [
        user("sono Maria Rossi, scrivo da via Roma 12, mail maria@example.it tel 3331234567",
             "inform", at=1, entities=[{"entity": "email", "value": "maria@example.it"},
                                       {"entity": "phone", "value": "3331234567"}]),
        user("il mio codice è C1000001", "inform", at=3),
        slot("customer_code", "C1000001", 3.5),
        bot("Grazie Maria, IBAN IT60X0542811101000000123456 registrato", 4)])
    c = conversations("pii")[0]
    texts = [m.text for m in c.messages]
    joined = " ".join(texts) + " ".join(m.entities or "" for m in c.messages)
    for secret in ("Maria", "Rossi", "maria@example.it", "3331234567", "C1000001",
                   "IT60X0542811101000000123456", "via Roma 12"):
        assert secret not in joined, secret
    assert "[EMAIL]" in texts[0] and "[PHONE]" in texts[0] and "[CUSTOMER_CODE]" in texts[1]
    assert json.loads(c.messages[0].entities) == [{"entity": "email", "value": "[EMAIL]"},
                                                  {"entity": "phone", "value": "[PHONE]"}]
    assert c.customer_code == "C1000001"


def test_a_batch_reads_its_conversations_in_a_few_queries_whatever_their_number(
        demo_database):
    """A batch of a busy moment: each conversation identified in an earlier batch says its
    customer's name now, and as many new conversations identify their customer. Every line
    lands in its own conversation, masked with its own customer's data, and the batch reads the
    same number of times for 3 + 3 conversations as for 12 + 12 (the conversations, their lines,
    intents and tasks, and the customers, read together)."""
    from sqlalchemy import event

    from bot.crm.models import Customer
    from bot.persistence.db import get_engine

    with session_scope() as db:
        customers = {c.customer_code: (c.first_name, c.last_name) for c in db.execute(
            select(Customer).order_by(Customer.customer_code).limit(12)).scalars()}
    codes = list(customers)
    for i, code in enumerate(codes):
        apply(f"busy-{i}", session(0) + [user("ciao", "greet", at=1),
                                         slot("customer_code", code, 1.5),
                                         bot("Ciao!", 2)])
    reads: list[str] = []

    def counted(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("SELECT"):
            reads.append(statement)

    engine = get_engine(None)  # the engine of session_scope() (the cache tells f() from f(None))
    event.listen(engine, "before_cursor_execute", counted)
    try:
        per_size = {}
        for size in (3, 12):
            reads.clear()
            batch = []
            for i in range(size):
                name = " ".join(customers[codes[i]])
                batch.append((f"busy-{i}", user(f"sono {name}, a posto?", "inform",
                                                at=10 + size)))
                # and a conversation that starts and identifies its customer in this batch
                batch += [(f"fresh-{size}-{i}", e) for e in session(20) + [
                    user("ciao", "greet", at=21), slot("customer_code", codes[i], 21.5),
                    user(f"sono {name}", "inform", at=22)]]
            with session_scope() as db:
                ingest.apply_events(db, batch)
            per_size[size] = len(reads)
    finally:
        event.remove(engine, "before_cursor_execute", counted)
    assert per_size[3] == per_size[12], per_size
    for i, code in enumerate(codes):
        c = conversations(f"busy-{i}")[-1]
        said = [m.text for m in c.messages if m.sender == "customer"]
        assert len(said) == (3 if i < 3 else 2), said
        first, last = customers[code]
        assert first not in said[-1] and last not in said[-1], said[-1]
        assert c.customer_code == code and c.turns == len(said)
    for size in (3, 12):
        for i in range(size):
            c = conversations(f"fresh-{size}-{i}")[-1]
            said = [m.text for m in c.messages if m.sender == "customer"]
            assert len(said) == 2 and c.customer_code == codes[i]
            assert not any(part in said[-1] for part in customers[codes[i]]), said[-1]


def _broker(database, tmp_path):
    """Rasa's own SQL event broker, writing where the log reads."""
    from rasa.core.brokers.sql import SQLEventBroker

    if database.startswith("sqlite"):
        path = tmp_path / "events.db"
        return SQLEventBroker(dialect="sqlite", db=str(path)), f"sqlite:///{path}"
    from tests.conftest import create_pg_database, pg_url

    name = create_pg_database()
    return (SQLEventBroker(dialect="postgresql", host="127.0.0.1", port=5432,
                           username="postgres", db=name), pg_url(name))


def test_the_stream_is_read_once_even_after_a_crash_in_the_middle(database, tmp_path,
                                                                    monkeypatch):
    broker, url = _broker(database, tmp_path)
    for e in session(0) + [user("ciao", "greet", at=1), user("bolletta", "check_bill", at=2)]:
        broker.publish({"sender_id": "stream", **e})
    assert ingest.sync(events_url=url) == 5
    assert ingest.sync(events_url=url) == 0  # nothing new: nothing counted again
    for e in [user("come pago", "pay_bill", at=3), user("grazie", "thank_you", at=4)]:
        broker.publish({"sender_id": "stream", **e})

    real = ingest.LogBuilder.apply
    calls = {"n": 0}

    def crash_on_second(self, sender, event):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("the process dies half-way through a batch")
        return real(self, sender, event)

    monkeypatch.setattr(ingest.LogBuilder, "apply", crash_on_second)
    with pytest.raises(RuntimeError):
        ingest.sync(events_url=url)
    monkeypatch.setattr(ingest.LogBuilder, "apply", real)
    [c] = conversations("stream")
    assert c.turns == 2  # the half-done batch left nothing behind
    assert ingest.sync(events_url=url) == 2
    [c] = conversations("stream")
    assert c.turns == 4 and {i.intent for i in c.intents} == {"greet", "check_bill", "pay_bill",
                                                              "thank_you"}
    with session_scope() as db:
        assert db.execute(select(func.count()).select_from(ConversationMessage)).scalar() == 4
        assert db.get(StreamCursor, ingest.SOURCE).position == 7
    broker.engine.dispose()
