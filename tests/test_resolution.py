"""Resolution net of recontact and silent failures (bot.analytics.tasks, bot.analytics.resolution,
the KPIs of bot.analytics.kpis), on SQLite and PostgreSQL.

Part 1, the KPIs on a fixed, hand-checked set of tasks. Current period Mon 2026-03-23 .. Sun
2026-03-29 (Europe/Rome), previous 03-16 .. 03-22; times UTC. Customers C1000001..C1000003;
"anon" = anonymous (no customer code). Every conversation has ended.

| conv | started     | sender   | ch       | lang | persona  | customer | tasks (outcome, confirmed by, reference, ended)                          | flagged lines |
|------|-------------|----------|----------|------|----------|----------|--------------------------------------------------------------------------|---------------|
| R1   | 03-23 09:00 | web-1    | web      | it   | family   | C1000001 | check_bill resolved, thanks, B2026-0000001, 09:02                        |               |
| R2   | 03-25 10:00 | wa-1     | whatsapp | it   | family   | C1000001 | check_bill resolved, assumed, 10:01                                      |               |
| R3   | 03-24 11:00 | web-2    | web      | en   | digital  | C1000002 | submit_meter_reading resolved, assumed, 11:03; report_outage resolved, csat, T-2026-000010, 11:05 | |
| R4   | 03-26 12:00 | tg-9     | telegram | it   | senior   | anon     | pay_bill resolved, assumed, 12:01                                        |               |
| R5   | 03-27 08:00 | tg-9     | telegram | it   | senior   | anon     | pay_bill not resolved (silent_turn)                                      | silent_turn   |
| R6   | 03-27 09:00 | web-anon | web      | it   | (none)   | anon     | pay_bill resolved, assumed, 09:01                                        |               |
| R7   | 03-28 10:00 | wa-anon  | whatsapp | en   | (none)   | anon     | pay_bill not resolved (wrong_skill); file_complaint handed over          | wrong_skill   |
| R8   | 03-29 20:00 | web-1    | web      | it   | family   | C1000001 | update_contact not resolved (error_reply)                                | error_reply   |
| R9   | 03-23 15:00 | web-3    | web      | it   | business | C1000003 | contract_info resolved, assumed, 15:01                                   |               |
| R10  | 03-24 09:00 | web-4    | web      | it   | family   | C1000001 | (none)                                                                   |               |
| P1   | 03-20 10:00 | web-1    | web      | it   | family   | C1000001 | check_bill resolved, assumed, 10:01                                      |               |
| P2   | 03-18 09:00 | web-2    | web      | it   | digital  | C1000002 | submit_meter_reading not resolved (form_cancelled)                       |               |
| P3   | 03-19 09:00 | wa-p3    | whatsapp | en   | digital  | anon     | activate_ebill resolved, thanks, 09:02                                   |               |

Imported into the customer history: C1000002 by phone on 03-26 09:00, topic check_bill, summary
naming ticket T-2026-000010; C1000002 on the web chat on 03-25 (conversation id web-2: the
bot's own record, not an import), topic submit_meter_reading; C1000003 by e-mail on 03-31 16:00,
topic contract_info (8 days after R9).

Recontacts within 7 days: P1 by R1 (same customer, check_bill, 3 days later); R1 by R2 (same
customer on WhatsApp, 2 days later); R3's report_outage by the phone call about its ticket; R4
by R5 (the same anonymous sender id). Not: R2, R3's reading (the bot's own record is no
import), R6 (R7 is another anonymous sender), R9 (8 days).
"""  # noqa: E501 (the tables above)

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from bot.analytics import kpis
from bot.analytics.models import (
    Conversation,
    ConversationIntent,
    ConversationMessage,
    ConversationTask,
    stage_of,
)
from bot.persistence.db import session_scope

CURRENT = (date(2026, 3, 23), date(2026, 3, 29))


def at(month, day, hour, minute=0):
    return datetime(2026, month, day, hour, minute, tzinfo=timezone.utc)


# conv: (started, sender, channel, language, persona, customer, tasks, failures)
# task: (skill, outcome, reason, confirmed_by, reference, minutes after the start it ended)
CONVERSATIONS = {
    "R1": (at(3, 23, 9), "web-1", "web", "it", "family", "C1000001",
           [("check_bill", "resolved", None, "thanks", "B2026-0000001", 2)], []),
    "R2": (at(3, 25, 10), "wa-1", "whatsapp", "it", "family", "C1000001",
           [("check_bill", "resolved", None, None, None, 1)], []),
    "R3": (at(3, 24, 11), "web-2", "web", "en", "digital", "C1000002",
           [("submit_meter_reading", "resolved", None, None, None, 3),
            ("report_outage", "resolved", None, "csat", "T-2026-000010", 5)], []),
    "R4": (at(3, 26, 12), "tg-9", "telegram", "it", "senior", None,
           [("pay_bill", "resolved", None, None, None, 1)], []),
    "R5": (at(3, 27, 8), "tg-9", "telegram", "it", "senior", None,
           [("pay_bill", "not_resolved", "silent_turn", None, None, 4)], ["silent_turn"]),
    "R6": (at(3, 27, 9), "web-anon", "web", "it", None, None,
           [("pay_bill", "resolved", None, None, None, 1)], []),
    "R7": (at(3, 28, 10), "wa-anon", "whatsapp", "en", None, None,
           [("pay_bill", "not_resolved", "wrong_skill", None, None, 1),
            ("file_complaint", "handed_over", None, None, None, 3)], ["wrong_skill"]),
    "R8": (at(3, 29, 20), "web-1", "web", "it", "family", "C1000001",
           [("update_contact", "not_resolved", "error_reply", None, None, 2)], ["error_reply"]),
    "R9": (at(3, 23, 15), "web-3", "web", "it", "business", "C1000003",
           [("contract_info", "resolved", None, None, None, 1)], []),
    "R10": (at(3, 24, 9), "web-4", "web", "it", "family", "C1000001", [], []),
    "P1": (at(3, 20, 10), "web-1", "web", "it", "family", "C1000001",
           [("check_bill", "resolved", None, None, None, 1)], []),
    "P2": (at(3, 18, 9), "web-2", "web", "it", "digital", "C1000002",
           [("submit_meter_reading", "not_resolved", "form_cancelled", None, None, 3)], []),
    "P3": (at(3, 19, 9), "wa-p3", "whatsapp", "en", "digital", None,
           [("activate_ebill", "resolved", None, "thanks", None, 2)], []),
}


def add_customer(db, code):
    from bot.crm.models import Customer

    customer = Customer(customer_code=code, first_name="Anna", last_name="Test", language="it",
                        persona="family", preferred_channel="web")
    db.add(customer)
    db.flush()
    return customer


def add_interaction(db, customer, when, channel, topic, summary="", conversation_id=None):
    from bot.crm.models import Interaction

    db.add(Interaction(customer_id=customer.id, at=when, channel=channel, topic=topic,
                       outcome="resolved", summary=summary, conversation_id=conversation_id))


@pytest.fixture
def tasks_log(database):
    with session_scope() as db:
        for sid, (start, sender, channel, language, persona, customer, tasks,
                  failures) in CONVERSATIONS.items():
            conv = Conversation(
                sender_id=sender, session_start=start.timestamp(), channel=channel,
                language=language, persona=persona, customer_code=customer,
                outcome="contained", ended=True, turns=3, fallbacks=0, failures=len(failures),
                last_was_fallback=False, handed_over=False, started_at=start,
                last_event_at=start + timedelta(minutes=10),
                ended_at=start + timedelta(minutes=10), reviewed=False)
            conv.tasks = [ConversationTask(
                skill=skill, started_at=start, last_at=start + timedelta(minutes=minutes),
                ended_at=start + timedelta(minutes=minutes), outcome=outcome, reason=reason,
                confirmed=confirmed_by is not None, confirmed_by=confirmed_by,
                reference=reference, turns=1, replied=True)
                for skill, outcome, reason, confirmed_by, reference, minutes in tasks]
            outcomes = {t.outcome for t in conv.tasks}
            conv.resolution = (None if not outcomes else "not_resolved" if "not_resolved"
                               in outcomes else "handed_over" if "handed_over" in outcomes
                               else "resolved")
            conv.intents = [ConversationIntent(intent=skill, stage=stage_of(skill), count=1)
                            for skill in dict.fromkeys(t[0] for t in tasks)]
            conv.messages = [ConversationMessage(at=start, sender="customer", text=sid,
                                                 failure=kind) for kind in failures]
            db.add(conv)
        c2, c3 = add_customer(db, "C1000002"), add_customer(db, "C1000003")
        add_interaction(db, c2, at(3, 26, 9), "phone", "check_bill",
                        "Chiede a che punto è il guasto T-2026-000010")
        add_interaction(db, c2, at(3, 25, 9), "web", "submit_meter_reading",
                        conversation_id="web-2")
        add_interaction(db, c3, at(3, 31, 16), "email", "contract_info", "Scadenza contratto")
    return database


def compute(start_end=CURRENT, **kw):
    with session_scope() as db:
        return kpis.compute(db, *start_end, **kw)


RESOLUTION_KEYS = ("tasks", "resolution_rate", "confirmed_resolution_rate",
                   "assumed_resolution_rate", "net_resolution_rate",
                   "conversation_resolution_rate", "silent_failure_rate")


def figures(k):
    return tuple(k[key] for key in RESOLUTION_KEYS)


def test_resolution_of_the_period(tasks_log):
    r = compute()
    # 11 tasks; resolved R1 R2 R3x2 R4 R6 R9 = 7, confirmed R1 (thanks) R3 outage (csat) = 2,
    # assumed 5; withdrawn R1 (R2 on WhatsApp), R3 outage (phone call about its ticket), R4
    # (the same anonymous sender came back) = 3: net 4. Conversations R1..R10 = 10, with a task
    # 9, all tasks resolved R1 R2 R3 R4 R6 R9 = 6; with a silent failure R5 R7 R8 = 3.
    assert figures(r["kpis"]) == (11, 7 / 11, 2 / 11, 5 / 11, 4 / 11, 6 / 9, 3 / 10)
    assert r["resolution_counts"] == {
        "tasks": 11, "resolved": 7, "confirmed": 2, "withdrawn": 3, "handed_over": 1,
        "not_resolved": 3, "conversations": 10, "with_tasks": 9, "resolved_conversations": 6,
        "failed_conversations": 3}
    assert r["silent_failures"] == {"silent_turn": 1, "error_reply": 1, "wrong_skill": 1}
    assert r["recontact_days"] == 7
    # beside containment: every one of these conversations counts as contained
    assert r["kpis"]["containment_rate"] == 1.0


def test_previous_period_and_worse(tasks_log):
    # P1 P2 P3: 3 tasks, resolved P1 P3, confirmed P3; P1 withdrawn by R1: net 1/3;
    # conversations resolved P1 P3 = 2/3; no silent failure.
    assert figures(compute((date(2026, 3, 16), date(2026, 3, 22)))["kpis"]) == (
        3, 2 / 3, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 0 / 3)
    with session_scope() as db:
        r = kpis.compare(db, *CURRENT)
    got = {k["key"]: k for k in r["kpis"]}
    # resolution 7/11 < 2/3 and confirmed 2/11 < 1/3: worse; net 4/11 > 1/3: better;
    # conversations resolved 6/9 = 2/3: no change; silent failures 3/10 > 0: worse; the
    # assumed rate (5/11 against 1/3) and the task volume have no direction.
    expected = {"tasks": (False, False), "resolution_rate": (True, False),
                "confirmed_resolution_rate": (True, False),
                "assumed_resolution_rate": (False, False),
                "net_resolution_rate": (False, True),
                "conversation_resolution_rate": (False, False),
                "silent_failure_rate": (True, False)}
    for key, (worse, better) in expected.items():
        assert (got[key]["worse"], got[key]["better"]) == (worse, better), key
    assert got["net_resolution_rate"]["change"] == pytest.approx(4 / 11 - 1 / 3)
    assert got["conversation_resolution_rate"]["change"] == pytest.approx(0)
    assert {"resolution_rate", "confirmed_resolution_rate", "silent_failure_rate"} <= set(
        r["worsened"])


def test_by_channel(tasks_log):
    groups = {g["key"]: figures(g["kpis"]) for g in compute(by="channel")["groups"]}
    assert groups == {
        # R1 R3 R6 R8 R9 R10: tasks R1 R3x2 R6 R8 R9 = 6, resolved 5, confirmed R1 R3o = 2,
        # withdrawn R1 R3o = 2; with a task 5, resolved R1 R3 R6 R9 = 4; failed R8.
        "web": (6, 5 / 6, 2 / 6, 3 / 6, 3 / 6, 4 / 5, 1 / 6),
        # R2 R7: tasks R2 R7x2 = 3, resolved R2; R2 resolved, R7 failed.
        "whatsapp": (3, 1 / 3, 0 / 3, 1 / 3, 1 / 3, 1 / 2, 1 / 2),
        # R4 R5: resolved R4, withdrawn by R5; R5 failed.
        "telegram": (2, 1 / 2, 0 / 2, 1 / 2, 0 / 2, 1 / 2, 1 / 2),
    }


def test_by_persona_and_stage(tasks_log):
    groups = {g["key"]: figures(g["kpis"]) for g in compute(by="persona")["groups"]}
    # family R1 R2 R8 R10: tasks 3, resolved R1 R2, confirmed R1, withdrawn R1; with a task 3,
    # resolved R1 R2; failed R8 (1 of 4). anonymous R6 R7: tasks 3, resolved R6.
    assert groups["family"] == (3, 2 / 3, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 1 / 4)
    assert groups[None] == (3, 1 / 3, 0 / 3, 1 / 3, 1 / 3, 1 / 2, 1 / 2)
    assert groups["business"] == (1, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0)  # R9: the e-mail is late
    groups = {g["key"]: figures(g["kpis"]) for g in compute(by="stage")["groups"]}
    # feedback: R7 (file_complaint), with all its tasks: pay_bill not resolved, complaint
    # handed over. information: R9. No intent: R10, no task.
    assert groups["feedback"] == (2, 0 / 2, 0 / 2, 0 / 2, 0 / 2, 0 / 1, 1 / 1)
    assert groups["information"] == (1, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0)
    assert groups[None] == (0, None, None, None, None, None, 0.0)


def test_by_skill(tasks_log):
    r = compute(by="skill")
    groups = {g["key"]: (g["label"], g["kpis"]["conversations"], figures(g["kpis"]))
              for g in r["groups"]}
    assert groups == {
        # R4 R5 R6 R7: 4 tasks, resolved R4 R6, R4 withdrawn; conversations resolved R4 R6,
        # failed R5 R7
        "pay_bill": ("pay_bill", 4, (4, 2 / 4, 0 / 4, 2 / 4, 1 / 4, 2 / 4, 2 / 4)),
        # R1 R2: both resolved, R1 confirmed and withdrawn by R2
        "check_bill": ("check_bill", 2, (2, 1.0, 1 / 2, 1 / 2, 1 / 2, 1.0, 0.0)),
        "contract_info": ("contract_info", 1, (1, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0)),
        # R7: only the complaint task counts here (handed over), but R7 has a failure
        "file_complaint": ("file_complaint", 1, (1, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)),
        "report_outage": ("report_outage", 1, (1, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0)),
        "submit_meter_reading": ("submit_meter_reading", 1, (1, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0)),
        "update_contact": ("update_contact", 1, (1, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)),
        None: ("no task", 1, (0, None, None, None, None, None, 0.0)),
    }
    assert r["kpis"] == compute()["kpis"]  # the period's own figures stay


def test_the_recontact_window_is_a_setting(tasks_log, monkeypatch):
    from bot.settings import reset_settings

    # 9 days: R9 is also withdrawn by the e-mail of 03-31 (8 days after): net 3/11
    monkeypatch.setenv("RESOLUTION_RECONTACT_DAYS", "9")
    reset_settings()
    assert compute()["kpis"]["net_resolution_rate"] == 3 / 11
    # 1 day: only R4 (R5 came 20 hours later): net 6/11
    monkeypatch.setenv("RESOLUTION_RECONTACT_DAYS", "1")
    reset_settings()
    assert compute()["kpis"]["net_resolution_rate"] == 6 / 11
    assert compute()["recontact_days"] == 1


# ---- Part 2: tasks and silent failures from real Rasa events -----------------------------------


T0 = datetime(2026, 3, 24, 9, 0, tzinfo=timezone.utc).timestamp()


def user(text, intent, s, channel="rest"):
    return {"event": "user", "text": text, "timestamp": T0 + s, "input_channel": channel,
            "parse_data": {"intent": {"name": intent, "confidence": 0.9}, "entities": []}}


def bot(text, s, response="utter_x", **metadata):
    return {"event": "bot", "text": text, "timestamp": T0 + s,
            "metadata": {"utter_action": response, **metadata}}


def done(skill, reference=None):
    from bot.skills import task_marker

    return task_marker(skill, reference)


def action(name, s):
    return {"event": "action", "name": name, "timestamp": T0 + s}


def slot(name, value, s):
    return {"event": "slot", "name": name, "value": value, "timestamp": T0 + s}


def loop(name, s):
    return {"event": "active_loop", "name": name, "timestamp": T0 + s}


def session(s):
    return [{"event": "session_started", "timestamp": T0 + s}, action("action_listen", s)]


def ingest(sender, events, one_by_one=False):
    """The events into the log: in one transaction, or each in its own (as a log worker that
    reads them one batch at a time)."""
    from bot.analytics.ingest import apply_events, sweep

    batches = [[e] for e in events] if one_by_one else [events]
    for batch in batches:
        with session_scope() as db:
            apply_events(db, [(sender, e) for e in batch])
    sweep(now=datetime.fromtimestamp(T0, timezone.utc) + timedelta(hours=3))


def record(sender):
    with session_scope() as db:
        conv = db.execute(select(Conversation).where(Conversation.sender_id == sender)
                          .order_by(Conversation.id.desc()).limit(1)).scalar_one()
        return {"outcome": conv.outcome, "resolution": conv.resolution,
                "failures": conv.failures,
                "tasks": [(t.skill, t.outcome, t.reason, t.confirmed_by, t.reference)
                          for t in conv.tasks],
                "flags": [(m.sender, m.text, m.failure) for m in conv.messages if m.failure]}


@pytest.mark.parametrize("one_by_one", [False, True], ids=["one batch", "event by event"])
def test_a_silent_turn_is_the_only_failure_and_the_task_is_not_resolved(database, one_by_one):
    # the bill question gets no reply at all; the customer leaves
    ingest("silent", session(0) + [user("quanto devo pagare?", "check_bill", 1),
                                   action("action_listen", 1.5)], one_by_one)
    r = record("silent")
    assert r["outcome"] == "contained"  # what containment alone says
    assert r["resolution"] == "not_resolved"
    assert r["tasks"] == [("check_bill", "not_resolved", "silent_turn", None, None)]
    assert r["flags"] == [("customer", "quanto devo pagare?", "silent_turn")]
    with session_scope() as db:
        k = kpis.compute(db, date(2026, 3, 24), date(2026, 3, 24))["kpis"]
    assert (k["containment_rate"], k["resolution_rate"], k["silent_failure_rate"]) == (
        1.0, 0.0, 1.0)


@pytest.mark.parametrize("one_by_one", [False, True], ids=["one batch", "event by event"])
def test_resolved_confirmed_and_assumed(database, one_by_one):
    # a: bill shown (the skill's marker), then thanks: confirmed
    ingest("a", session(0) + [
        user("la bolletta", "check_bill", 1), action("action_check_bill", 1.1),
        bot("Hai una bolletta da 84,20 €", 1.2, "utter_one_bill_due",
            **done("check_bill", "B2026-0000001")),
        user("grazie!", "thank_you", 2), action("utter_you_are_welcome", 2.1),
        bot("Prego!", 2.2, "utter_you_are_welcome")], one_by_one)
    assert record("a")["tasks"] == [("check_bill", "resolved", None, "thanks",
                                     "B2026-0000001")]
    # b: contract shown, an offer declined, "anything else?" "no": confirmed
    ingest("b", session(0) + [
        user("il mio contratto", "contract_info", 1), action("action_contract_info", 1.1),
        bot("Tariffa Casa Luce", 1.2, "utter_contract_supplies", **done("contract_info")),
        user("no", "deny", 2), action("action_deny", 2.1),
        bot("Posso aiutarti in altro?", 2.2, "utter_ok_something_else"),
        user("no, a posto così", "deny", 3), action("action_deny", 3.1),
        bot("Posso aiutarti in altro?", 3.2, "utter_ok_something_else")], one_by_one)
    assert record("b")["tasks"] == [("contract_info", "resolved", None, "nothing_else", None)]
    # c: a reading stored (a form), rated 4: confirmed by CSAT
    ingest("c", session(0) + [
        user("autolettura", "submit_meter_reading", 1), action("meter_reading_form", 1.1),
        loop("meter_reading_form", 1.1), bot("Qual è la lettura?", 1.2),
        user("4512", "inform", 2), action("meter_reading_form", 2.1), loop(None, 2.1),
        action("action_meter_reading_submit", 2.2),
        bot("Lettura salvata", 2.3, "utter_reading_stored", **done("submit_meter_reading")),
        slot("rating", 4, 4)], one_by_one)
    assert record("c")["tasks"] == [("submit_meter_reading", "resolved", None, "csat", None)]
    # d: a bill shown, a goodbye, rated 3: resolved but only assumed
    ingest("d", session(0) + [
        user("la bolletta", "check_bill", 1), action("action_check_bill", 1.1),
        bot("Nessuna bolletta da pagare", 1.2, "utter_no_bills_due", **done("check_bill")),
        user("ciao", "goodbye", 2), bot("Arrivederci", 2.1, "utter_goodbye"),
        slot("rating", 3, 3)], one_by_one)
    r = record("d")
    assert r["tasks"] == [("check_bill", "resolved", None, None, None)]
    assert (r["resolution"], r["failures"]) == ("resolved", 0)


@pytest.mark.parametrize("one_by_one", [False, True], ids=["one batch", "event by event"])
def test_wrong_skill(database, one_by_one):
    # rephrased: the bill question was taken for the reading form; the customer at once asks
    # again for something else
    ingest("w1", session(0) + [
        user("voglio pagare la bolletta", "submit_meter_reading", 1),
        action("meter_reading_form", 1.1), loop("meter_reading_form", 1.1),
        bot("Qual è la lettura?", 1.2, "utter_ask_reading_value"),
        user("pagare la bolletta!", "pay_bill", 2), action("meter_reading_form", 2.1),
        loop(None, 2.1), action("action_pay_bill", 2.2),
        bot("Ecco il link", 2.3, "utter_pay_link", **done("pay_bill", "B2026-0000001"))],
        one_by_one)
    r = record("w1")
    assert r["tasks"] == [("submit_meter_reading", "not_resolved", "wrong_skill", None, None),
                          ("pay_bill", "resolved", None, None, "B2026-0000001")]
    assert r["flags"] == [("customer", "voglio pagare la bolletta", "wrong_skill")]
    assert r["resolution"] == "not_resolved"
    # "no, I meant...": even after the skill did its job
    ingest("w2", session(0) + [
        user("bill", "check_bill", 1), action("action_check_bill", 1.1),
        bot("Your bill is 84.20", 1.2, "utter_one_bill_due", **done("check_bill")),
        user("no, I meant my contract", "contract_info", 2),
        action("action_contract_info", 2.1),
        bot("Your tariff", 2.2, "utter_contract_supplies", **done("contract_info"))],
        one_by_one)
    assert record("w2")["tasks"] == [("check_bill", "not_resolved", "wrong_skill", None, None),
                                     ("contract_info", "resolved", None, None, None)]
    # not a wrong skill: the next request after a resolved one
    ingest("w3", session(0) + [
        user("bill", "check_bill", 1), action("action_check_bill", 1.1),
        bot("Your bill is 84.20", 1.2, "utter_one_bill_due", **done("check_bill")),
        user("and my contract?", "contract_info", 2), action("action_contract_info", 2.1),
        bot("Your tariff", 2.2, "utter_contract_supplies", **done("contract_info"))],
        one_by_one)
    r = record("w3")
    assert [t[1] for t in r["tasks"]] == ["resolved", "resolved"] and r["flags"] == []


def test_error_reply_cancelled_form_handover_and_endings(database):
    # an error reply, nothing done
    ingest("e", session(0) + [
        user("cambia email", "update_contact", 1), action("contact_form", 1.1),
        loop("contact_form", 1.1), bot("Nuova email?", 1.2, "utter_ask_new_contact"),
        user("a@b.it", "inform", 2), action("contact_form", 2.1),
        bot("Problema tecnico", 2.2, "utter_technical_problem"),
        loop(None, 2.3)])
    r = record("e")
    assert r["tasks"] == [("update_contact", "not_resolved", "error_reply", None, None)]
    assert r["flags"] == [("bot", "Problema tecnico", "error_reply")]
    # a form cancelled by the customer
    ingest("f", session(0) + [
        user("domiciliazione", "setup_direct_debit", 1), action("direct_debit_form", 1.1),
        loop("direct_debit_form", 1.1), bot("IBAN?", 1.2),
        user("annulla", "cancel", 2), action("direct_debit_form", 2.1),
        bot("Ho annullato", 2.2, "utter_form_cancelled"), loop(None, 2.3)])
    assert record("f")["tasks"] == [("setup_direct_debit", "not_resolved", "form_cancelled",
                                     None, None)]
    # a form left open: abandoned; a misunderstanding at the end
    ingest("g", session(0) + [
        user("richiamatemi", "request_callback", 1), action("callback_form", 1.1),
        loop("callback_form", 1.1), bot("Numero?", 1.2)])
    assert record("g")["tasks"] == [("request_callback", "not_resolved", "form_abandoned",
                                     None, None)]
    ingest("h", session(0) + [
        user("stato pratica", "ticket_status", 1), action("action_ticket_status", 1.1),
        bot("Quale pratica?", 1.2), user("asdf", "nlu_fallback", 2),
        action("action_nlu_fallback", 2.1), bot("Non ho capito", 2.2)])
    assert record("h")["tasks"] == [("ticket_status", "not_resolved", "fallback_end", None,
                                     None)]
    # handed over in the middle of the task; moving always goes to a person
    ingest("i", session(0) + [
        user("trasloco", "move_home", 1), action("action_move_home", 1.1),
        bot("Ti passo a un collega", 1.2), {"event": "pause", "timestamp": T0 + 1.3}])
    r = record("i")
    assert (r["tasks"], r["resolution"]) == ([("move_home", "handed_over", None, None, None)],
                                             "handed_over")
    # a bill question the bot hands to the reading form (a reading in it): one task, the form's
    ingest("j", session(0) + [
        user("la bolletta, il contatore segna 4512", "check_bill", 1),
        action("action_check_bill", 1.1), action("meter_reading_form", 1.2),
        loop("meter_reading_form", 1.2), loop(None, 1.3),
        action("action_meter_reading_submit", 1.4),
        bot("Lettura salvata", 1.5, "utter_reading_stored", **done("submit_meter_reading"))])
    assert record("j")["tasks"] == [("submit_meter_reading", "resolved", None, None, None)]


def test_a_resolution_withdrawn_by_a_recontact_on_another_channel(database):
    """Through the log built from events: a bill answered on the web chat, then the same customer
    on WhatsApp two days later about bills (withdrawn); an outage ticket answered, then a phone
    call about that ticket imported into the history (withdrawn); another customer's later
    question changes nothing."""

    def identified(sender, code, channel, start, skill, reference=None):
        return [{"event": "session_started", "timestamp": T0 + start},
                slot("customer_code", code, start + 0.1),
                user("domanda", skill, start + 1, channel=channel),
                action(f"action_{skill}", start + 1.1),
                bot("Risposta", start + 1.2, "utter_y", **done(skill, reference))]

    ingest("web-1", identified("web-1", "C1000001", "rest", 0, "check_bill"))
    ingest("web-2", identified("web-2", "C1000002", "rest", 60, "report_outage",
                               "T-2026-000042"))
    ingest("web-3", identified("web-3", "C1000003", "rest", 120, "check_bill"))
    with session_scope() as db:
        k = kpis.compute(db, date(2026, 3, 24), date(2026, 3, 24))
    assert (k["kpis"]["resolution_rate"], k["kpis"]["net_resolution_rate"]) == (1.0, 1.0)
    two_days = 2 * 86400
    ingest("393331112222", identified("393331112222", "C1000001", "whatsapp", two_days,
                                      "check_bill"))
    with session_scope() as db:
        customer = add_customer(db, "C1000002")
        add_interaction(db, customer, at(3, 25, 8), "phone", "report_outage",
                        "Sollecito sul guasto T-2026-000042")
    with session_scope() as db:
        k = kpis.compute(db, date(2026, 3, 24), date(2026, 3, 24))
    # the period's three tasks: web-1's and web-2's are withdrawn, web-3's stays
    assert k["resolution_counts"]["withdrawn"] == 2
    assert k["kpis"]["net_resolution_rate"] == 1 / 3
    assert k["kpis"]["resolution_rate"] == 1.0


# ---- Part 3: the console (list filters, transcript flags) and the skills' marker -----------


def test_the_console_filters_and_shows_silent_failures_and_tasks(database):
    from bot.analytics import queries as q

    ingest("silent", session(0) + [user("quanto devo pagare?", "check_bill", 1)])
    ingest("error", session(0) + [
        user("cambia email", "update_contact", 1), action("contact_form", 1.1),
        bot("Problema tecnico", 1.2, "utter_technical_problem")])
    ingest("fine", session(0) + [
        user("la bolletta", "check_bill", 1), action("action_check_bill", 1.1),
        bot("Hai una bolletta", 1.2, "utter_one_bill_due", **done("check_bill", "B2026-0000007")),
        user("grazie", "thank_you", 2), bot("Prego", 2.1, "utter_you_are_welcome")])
    ingest("chat", session(0) + [user("ciao", "greet", 1), bot("Ciao!", 1.1, "utter_greet")])

    def senders(**args):
        with session_scope() as db:
            page = q.list_conversations(db, q.Filters.from_args(args))
            ids = [r["id"] for r in page.rows]
            return sorted(db.get(Conversation, i).sender_id for i in ids), page.rows

    assert senders(failure="silent_turn")[0] == ["silent"]
    assert senders(failure="error_reply")[0] == ["error"]
    assert senders(failure="wrong_skill")[0] == []
    assert senders(failure="any")[0] == ["error", "silent"]
    assert senders(resolution="resolved")[0] == ["fine"]
    assert senders(resolution="not_resolved")[0] == ["error", "silent"]
    rows = {r["customer_code"] or "": r for r in senders()[1]}
    assert sorted((r["resolution"] or "-", r["failures"]) for r in senders()[1]) == [
        ("-", 0), ("not_resolved", 1), ("not_resolved", 1), ("resolved", 0)]
    assert rows  # every conversation is listed
    with pytest.raises(ValueError, match="failure: one of silent_turn, error_reply, wrong_skill"):
        q.Filters.from_args({"failure": "loud"})
    with pytest.raises(ValueError, match="resolution: one of resolved, not_resolved"):
        q.Filters.from_args({"resolution": "maybe"})
    assert q.options()["failures"] == ["silent_turn", "error_reply", "wrong_skill", "any"]
    with session_scope() as db:
        cid = db.execute(select(Conversation.id).where(Conversation.sender_id == "silent")
                         ).scalar_one()
        silent = q.get_conversation(db, cid)
        cid = db.execute(select(Conversation.id).where(Conversation.sender_id == "fine")
                         ).scalar_one()
        fine = q.get_conversation(db, cid)
    assert (silent["resolution"], silent["failures"]) == ("not_resolved", 1)
    assert [(m["sender"], m["failure"]) for m in silent["messages"]] == [
        ("customer", "silent_turn")]
    assert [(t["skill"], t["outcome"], t["reason"]) for t in silent["tasks"]] == [
        ("check_bill", "not_resolved", "silent_turn")]
    assert [(t["skill"], t["outcome"], t["confirmed"], t["confirmed_by"], t["reference"])
            for t in fine["tasks"]] == [("check_bill", "resolved", True, "thanks",
                                         "B2026-0000007")]
    assert [m["response"] for m in fine["messages"] if m["sender"] == "bot"] == [
        "utter_one_bill_due", "utter_you_are_welcome"]


def test_a_skill_marks_the_reply_that_did_its_job(demo_sqlite):
    """The real actions put the marker on their reply (what the log reads back)."""
    import asyncio

    from rasa_sdk import Tracker
    from rasa_sdk.executor import CollectingDispatcher

    from actions.paperless import ActionActivateEbill
    from bot.skills import TASK_MARKER

    latest = {"text": "bolletta digitale", "intent": {"name": "activate_ebill",
                                                  "confidence": 1.0},
              "entities": [], "metadata": {}}
    tracker = Tracker("conv-marker", {"customer_code": "C1000001", "verified": True}, latest,
                      [{"event": "user", "text": latest["text"], "input_channel": "rest",
                        "parse_data": latest}], False, None, {}, "action_listen")
    dispatcher = CollectingDispatcher()
    asyncio.run(ActionActivateEbill().run(dispatcher, tracker, {}))
    marked = [m for m in dispatcher.messages if TASK_MARKER in m]
    assert marked == [dispatcher.messages[-1]]
    assert marked[0][TASK_MARKER] == {"skill": "activate_ebill", "outcome": "resolved"}
    # anonymous: asked to verify first, nothing marked
    anonymous = Tracker("conv-anon", {}, latest, [], False, None, {}, "action_listen")
    dispatcher = CollectingDispatcher()
    asyncio.run(ActionActivateEbill().run(dispatcher, anonymous, {}))
    assert dispatcher.messages and not any(TASK_MARKER in m for m in dispatcher.messages)


def test_retention_deletes_the_tasks_with_their_conversation(database):
    from bot.analytics.lifecycle import purge

    ingest("old", session(0) + [
        user("la bolletta", "check_bill", 1), action("action_check_bill", 1.1),
        bot("Hai una bolletta", 1.2, "utter_one_bill_due", **done("check_bill", "B2026-0000009"))])
    with session_scope() as db:
        assert db.execute(select(ConversationTask.reference)).scalars().all() == [
            "B2026-0000009"]
    purge(30, now=datetime.fromtimestamp(T0, timezone.utc) + timedelta(days=60))
    with session_scope() as db:
        assert db.execute(select(ConversationTask)).first() is None
        assert db.execute(select(Conversation)).first() is None


@pytest.mark.parametrize("text, correction", [
    ("No, intendevo la bolletta!", True),
    ("no volevo sapere la scadenza del contratto", True),
    ("Scusa ma non è quello che ho chiesto", True),
    ("No I meant the gas bill", True),
    ("That's not what I asked", True),
    ("non volevo disturbare, grazie mille", False),       # a thank-you
    ("intendevo anche chiederti del gas", False),         # one more request
    ("grazie, no intendevo altro", False),
])
def test_what_counts_as_saying_the_bot_took_the_wrong_request(text, correction):
    from bot.analytics.tasks import corrects

    assert corrects(text) is correction
