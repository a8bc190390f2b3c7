"""The KPIs of the conversation log (bot.analytics.kpis) on a fixed, hand-checked set of
conversations, on SQLite and PostgreSQL.

Current period: Mon 2026-03-23 .. Sun 2026-03-29 (Europe/Rome; summer time starts on the
29th at 02:00, so that day's local midnight is 22:00 UTC). Previous period: 2026-03-16 ..
2026-03-22. Times below are UTC.

Current period (11 conversations counted):

| id  | started (UTC)  | Rome day | ch       | lang | persona  | outcome   | turns | fb | reason            | wait | handl | csat | intents                         |
|-----|----------------|----------|----------|------|----------|-----------|-------|----|-------------------|------|-------|------|---------------------------------|
| C1  | 03-22 23:30    | 03-23    | web      | it   | family   | contained | 4     | 0  |                   |      |       | 5    | greet, check_bill               |
| C2  | 03-23 10:00    | 03-23    | web      | it   | family   | handover  | 5     | 2  | misunderstanding  | 30   | 200   | 2    | greet, check_bill               |
| C3  | 03-24 09:00    | 03-24    | whatsapp | it   | digital  | contained | 3     | 1  |                   |      |       | 4    | check_bill, pay_bill            |
| C4  | 03-24 15:00    | 03-24    | whatsapp | en   | digital  | abandoned | 2     | 1  |                   |      |       |      | greet, submit_meter_reading     |
| C5  | 03-25 11:00    | 03-25    | telegram | it   | senior   | handover  | 3     | 0  | request_human     | 120  | 600   | 3    | greet, report_outage            |
| C6  | 03-26 08:00    | 03-26    | web      | en   | (none)   | contained | 2     | 0  |                   |      |       |      | greet, contract_info            |
| C7  | 03-27 12:00    | 03-27    | web      | it   | business | handover  | 4     | 1  | vip               | 10   | 300   |      | check_bill, file_complaint      |
| C8  | 03-28 16:00    | 03-28    | whatsapp | it   | family   | handover  | 2     | 0  | request_human     |      |       |      | check_bill   (no agent: no wait) |
| C9  | 03-29 21:30    | 03-29    | web      | it   | family   | contained | 3     | 0  |                   |      |       | 5    | check_bill, give_feedback       |
| C10 | 03-29 08:00    | 03-29    | telegram | en   | digital  | abandoned | 1     | 1  |                   |      |       |      | (none understood)               |
| C11 | 03-26 14:00    | 03-26    | web      | it   | senior   | handover  | 2     | 0  | frustration       | 45   |       |      | pay_bill  (gave up waiting)     |

Not counted: X1 03-25 10:00, web, it, family, turns 0 (no customer message), csat 1;
X2 03-29 22:30 UTC = 03-30 00:30 in Rome (summer time): after the period;
X3 03-15 22:59 UTC = 03-15 23:59 in Rome: before the previous period.

Previous period (6 conversations):

| id | started (UTC) | Rome day | ch       | lang | persona | outcome   | turns | fb | reason        | wait | handl | csat | intents              |
|----|---------------|----------|----------|------|---------|-----------|-------|----|---------------|------|-------|------|----------------------|
| P1 | 03-15 23:00   | 03-16    | web      | it   | family  | contained | 3     | 0  |               |      |       | 2    | check_bill           |
| P2 | 03-17 09:00   | 03-17    | web      | it   | family  | contained | 2     | 0  |               |      |       | 4    | check_bill, pay_bill |
| P3 | 03-18 09:00   | 03-18    | whatsapp | it   | digital | contained | 4     | 3  |               |      |       | 4    | submit_meter_reading |
| P4 | 03-19 09:00   | 03-19    | telegram | it   | senior  | handover  | 3     | 0  | request_human | 200  | 100   | 4    | report_outage        |
| P5 | 03-20 09:00   | 03-20    | web      | en   | (none)  | abandoned | 2     | 2  |               |      |       |      | contract_info        |
| P6 | 03-22 22:59   | 03-22    | whatsapp | it   | family  | abandoned | 2     | 0  |               |      |       |      | check_bill           |
"""  # noqa: E501 (the tables above)

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from bot.analytics import kpis
from bot.analytics.models import Conversation, ConversationIntent, stage_of
from bot.persistence.db import session_scope

CURRENT = (date(2026, 3, 23), date(2026, 3, 29))
PREVIOUS = (date(2026, 3, 16), date(2026, 3, 22))

ROWS = [
    # id, started (UTC), channel, language, persona, outcome, turns, fallbacks, reason, wait,
    # handling, csat, intents
    ("C1", (3, 22, 23, 30), "web", "it", "family", "contained", 4, 0, None, None, None, 5,
     ["greet", "check_bill"]),
    ("C2", (3, 23, 10, 0), "web", "it", "family", "handover", 5, 2, "misunderstanding", 30, 200,
     2, ["greet", "check_bill"]),
    ("C3", (3, 24, 9, 0), "whatsapp", "it", "digital", "contained", 3, 1, None, None, None, 4,
     ["check_bill", "pay_bill"]),
    ("C4", (3, 24, 15, 0), "whatsapp", "en", "digital", "abandoned", 2, 1, None, None, None,
     None, ["greet", "submit_meter_reading"]),
    ("C5", (3, 25, 11, 0), "telegram", "it", "senior", "handover", 3, 0, "request_human", 120,
     600, 3, ["greet", "report_outage"]),
    ("C6", (3, 26, 8, 0), "web", "en", None, "contained", 2, 0, None, None, None, None,
     ["greet", "contract_info"]),
    ("C7", (3, 27, 12, 0), "web", "it", "business", "handover", 4, 1, "vip", 10, 300, None,
     ["check_bill", "file_complaint"]),
    ("C8", (3, 28, 16, 0), "whatsapp", "it", "family", "handover", 2, 0, "request_human", None,
     None, None, ["check_bill"]),
    ("C9", (3, 29, 21, 30), "web", "it", "family", "contained", 3, 0, None, None, None, 5,
     ["check_bill", "give_feedback"]),
    ("C10", (3, 29, 8, 0), "telegram", "en", "digital", "abandoned", 1, 1, None, None, None,
     None, []),
    ("C11", (3, 26, 14, 0), "web", "it", "senior", "handover", 2, 0, "frustration", 45, None,
     None, ["pay_bill"]),
    ("X1", (3, 25, 10, 0), "web", "it", "family", "contained", 0, 0, None, None, None, 1, []),
    ("X2", (3, 29, 22, 30), "web", "it", "family", "contained", 2, 0, None, None, None, 1,
     ["check_bill"]),
    ("X3", (3, 15, 22, 59), "web", "it", "family", "contained", 2, 0, None, None, None, 1,
     ["check_bill"]),
    ("P1", (3, 15, 23, 0), "web", "it", "family", "contained", 3, 0, None, None, None, 2,
     ["check_bill"]),
    ("P2", (3, 17, 9, 0), "web", "it", "family", "contained", 2, 0, None, None, None, 4,
     ["check_bill", "pay_bill"]),
    ("P3", (3, 18, 9, 0), "whatsapp", "it", "digital", "contained", 4, 3, None, None, None, 4,
     ["submit_meter_reading"]),
    ("P4", (3, 19, 9, 0), "telegram", "it", "senior", "handover", 3, 0, "request_human", 200,
     100, 4, ["report_outage"]),
    ("P5", (3, 20, 9, 0), "web", "en", None, "abandoned", 2, 2, None, None, None, None,
     ["contract_info"]),
    ("P6", (3, 22, 22, 59), "whatsapp", "it", "family", "abandoned", 2, 0, None, None, None,
     None, ["check_bill"]),
]


def _insert(rows) -> None:
    with session_scope() as db:
        for (sid, (month, day, hour, minute), channel, language, persona, outcome, turns,
             fallbacks, reason, wait, handling, csat, intents) in rows:
            at = datetime(2026, month, day, hour, minute, tzinfo=timezone.utc)
            conv = Conversation(
                sender_id=sid, session_start=at.timestamp(), channel=channel,
                language=language, persona=persona, outcome=outcome, ended=True, turns=turns,
                fallbacks=fallbacks, active_loop=None, last_was_fallback=False,
                handed_over=outcome == "handover", handover_reason=reason,
                handover_state=("closed" if wait is not None else "unavailable")
                if outcome == "handover" else None,
                handover_wait_seconds=wait, handover_handling_seconds=handling, csat=csat,
                started_at=at, last_event_at=at + timedelta(minutes=5),
                ended_at=at + timedelta(minutes=5), reviewed=False)
            conv.intents = [ConversationIntent(intent=i, stage=stage_of(i), count=1)
                            for i in intents]
            db.add(conv)


@pytest.fixture
def log(database):
    _insert(ROWS)
    return database


def no_tasks(conversations):
    """The resolution KPIs of conversations without a task or a silent failure (this set's):
    no task to resolve, and none of the conversations failed silently
    (tests/test_resolution.py has the hand-checked set for these)."""
    return {"tasks": 0, "resolution_rate": None, "confirmed_resolution_rate": None,
            "assumed_resolution_rate": None, "net_resolution_rate": None,
            "conversation_resolution_rate": None,
            "silent_failure_rate": 0 / conversations if conversations else None}


def _compute(start_end=CURRENT, filters=None, by=None):
    with session_scope() as db:
        return kpis.compute(db, *start_end, filters=filters, by=by)


def _compare(filters=None, by=None):
    with session_scope() as db:
        return kpis.compare(db, *CURRENT, filters=filters, by=by)


def test_every_kpi_of_the_period(log):
    r = _compute()
    # C1..C11; X1 (no turn), X2 (Rome 03-30), X3 (Rome 03-15) and P* are out.
    # contained C1 C3 C6 C9 = 4; handover C2 C5 C7 C8 C11 = 5; abandoned C4 C10 = 2.
    # customer messages 4+5+3+2+3+2+4+2+3+1+2 = 31; fallbacks C2 2 + C3 C4 C7 C10 1 each = 6.
    # CSAT: C1 5, C2 2, C3 4, C5 3, C9 5: 5 ratings, sum 19, average 3.8, response 5/11.
    # wait: C2 30, C5 120, C7 10, C11 45 (C8 had no agent) -> [10, 30, 45, 120], n = 4:
    #   p50 rank ceil(0.5*4) = 2 -> 30; p90 rank ceil(0.9*4) = ceil(3.6) = 4 -> 120.
    # handling: C2 200, C5 600, C7 300 (C11 never reached a person) -> [200, 300, 600], n = 3:
    #   p50 rank ceil(1.5) = 2 -> 300; p90 rank ceil(2.7) = 3 -> 600.
    assert r["kpis"] == {
        **no_tasks(11), "conversations": 11,
        "containment_rate": 4 / 11,
        "handover_rate": 5 / 11,
        "fallback_rate": 6 / 31,
        "abandonment_rate": 2 / 11,
        "csat_average": 19 / 5,
        "csat_response_rate": 5 / 11,
        "wait_p50": 30, "wait_p90": 120,
        "handling_p50": 300, "handling_p90": 600,
    }
    assert r["counts"] == {"conversations": 11, "contained": 4, "handover": 5, "abandoned": 2,
                           "customer_messages": 31, "fallback_messages": 6, "rated": 5,
                           "csat_sum": 19}
    assert r["outcomes"] == {"contained": 4, "handover": 5, "abandoned": 2}
    assert r["wait_seconds"] == {"count": 4, "p50": 30, "p90": 120}
    assert r["handling_seconds"] == {"count": 3, "p50": 300, "p90": 600}
    assert (r["from"], r["to"], r["days"]) == ("2026-03-23", "2026-03-29", 7)
    # by Rome day: 23: C1 (03-22 23:30 UTC = 00:30 in Rome), C2; 24: C3 C4; 25: C5 (X1 has no
    # turn); 26: C6 C11; 27: C7; 28: C8; 29: C9 (21:30 UTC = 23:30 summer time), C10.
    assert r["volume_by_day"] == [
        {"day": "2026-03-23", "conversations": 2}, {"day": "2026-03-24", "conversations": 2},
        {"day": "2026-03-25", "conversations": 1}, {"day": "2026-03-26", "conversations": 2},
        {"day": "2026-03-27", "conversations": 1}, {"day": "2026-03-28", "conversations": 1},
        {"day": "2026-03-29", "conversations": 2}]
    # web C1 C2 C6 C7 C9 C11; whatsapp C3 C4 C8; telegram C5 C10
    assert r["volume_by_channel"] == [{"channel": "web", "conversations": 6},
                                      {"channel": "whatsapp", "conversations": 3},
                                      {"channel": "telegram", "conversations": 2}]
    # request_human C5 C8; frustration C11; misunderstanding C2; vip C7 (ties by name)
    assert r["handover_reasons"] == [{"reason": "request_human", "conversations": 2},
                                     {"reason": "frustration", "conversations": 1},
                                     {"reason": "misunderstanding", "conversations": 1},
                                     {"reason": "vip", "conversations": 1}]
    assert r["csat_distribution"] == [{"rating": 1, "conversations": 0},
                                      {"rating": 2, "conversations": 1},
                                      {"rating": 3, "conversations": 1},
                                      {"rating": 4, "conversations": 1},
                                      {"rating": 5, "conversations": 2}]
    # Conversations per intent, and the failed ones (a fallback or a handover):
    # check_bill C1 C2 C3 C7 C8 C9 = 6, failed C2 (fb, handover) C3 (fb) C7 C8 (handover) = 4
    # greet C1 C2 C4 C5 C6 = 5, failed C2 C4 (fb) C5 (handover) = 3
    # pay_bill C3 C11 = 2, failed both; the rest 1 each:
    # contract_info C6 (0), file_complaint C7 (1), give_feedback C9 (0), report_outage C5 (1),
    # submit_meter_reading C4 (1).
    def row(intent, n, failed):
        return {"intent": intent, "stage": stage_of(intent), "conversations": n,
                "failed": failed, "failure_rate": failed / n}
    assert r["top_intents"] == [
        row("check_bill", 6, 4), row("greet", 5, 3), row("pay_bill", 2, 2),
        row("contract_info", 1, 0), row("file_complaint", 1, 1), row("give_feedback", 1, 0),
        row("report_outage", 1, 1), row("submit_meter_reading", 1, 1)]
    # Only intents with >= 5 conversations are ranked: check_bill 4/6 = 0.667, greet 3/5 = 0.6;
    # pay_bill (2/2 failed) and the others are under the threshold.
    assert kpis.MIN_INTENT_CONVERSATIONS == 5
    assert r["failing_intents"] == [row("check_bill", 6, 4), row("greet", 5, 3)]
    assert r["groups"] == []


def test_previous_period(log):
    r = _compute(PREVIOUS)
    # P1..P6 (X3 is 03-15 23:59 in Rome, C1 is 03-23 00:30).
    # contained P1 P2 P3 = 3; handover P4 = 1; abandoned P5 P6 = 2.
    # messages 3+2+4+3+2+2 = 16, fallbacks 3+2 = 5; CSAT 2 4 4 4: sum 14, average 3.5, 4/6.
    # wait [200], handling [100]: both percentiles are the only value.
    assert r["kpis"] == {
        **no_tasks(6), "conversations": 6, "containment_rate": 3 / 6, "handover_rate": 1 / 6,
        "fallback_rate": 5 / 16, "abandonment_rate": 2 / 6, "csat_average": 14 / 4,
        "csat_response_rate": 4 / 6, "wait_p50": 200, "wait_p90": 200,
        "handling_p50": 100, "handling_p90": 100}
    assert [d["conversations"] for d in r["volume_by_day"]] == [1, 1, 1, 1, 1, 0, 1]
    assert r["volume_by_day"][0]["day"] == "2026-03-16"
    assert r["handover_reasons"] == [{"reason": "request_human", "conversations": 1}]
    # check_bill P1 P2 P6 = 3 (failed P6? no: abandoned without fallback is not a failure here)
    assert r["top_intents"][0] == {"intent": "check_bill", "stage": "self_care",
                                   "conversations": 3, "failed": 0, "failure_rate": 0.0}
    assert r["failing_intents"] == []  # no intent reaches 5 conversations


def test_period_over_period(log):
    r = _compare()
    assert r["current"]["kpis"]["conversations"] == 11
    assert r["previous"]["kpis"]["conversations"] == 6
    assert (r["previous"]["from"], r["previous"]["to"]) == ("2026-03-16", "2026-03-22")
    got = {k["key"]: k for k in r["kpis"]}
    assert [k["key"] for k in r["kpis"]] == [key for key, _, _ in kpis.KPI_DEFINITIONS]
    # key: (value, previous, change, worse, better)
    expected = {
        "conversations": (11, 6, 5, False, False),                 # no direction
        "containment_rate": (4 / 11, 3 / 6, 4 / 11 - 3 / 6, True, False),     # -3/22: down
        "handover_rate": (5 / 11, 1 / 6, 5 / 11 - 1 / 6, True, False),        # +19/66: up
        "fallback_rate": (6 / 31, 5 / 16, 6 / 31 - 5 / 16, False, True),      # -59/496
        "abandonment_rate": (2 / 11, 2 / 6, 2 / 11 - 2 / 6, False, True),     # -5/33
        "csat_average": (3.8, 3.5, 3.8 - 3.5, False, True),                   # +0.3
        "csat_response_rate": (5 / 11, 4 / 6, 5 / 11 - 4 / 6, True, False),   # -7/33
        "wait_p50": (30, 200, -170, False, True),
        "wait_p90": (120, 200, -80, False, True),
        "handling_p50": (300, 100, 200, True, False),
        "handling_p90": (600, 100, 500, True, False),
    }
    for key, (value, previous, change, worse, better) in expected.items():
        k = got[key]
        assert (k["value"], k["previous"], k["worse"], k["better"]) == (
            value, previous, worse, better), key
        assert k["change"] == pytest.approx(change, abs=1e-12), key
        assert k["direction"] == kpis.DIRECTION[key]
    assert r["worsened"] == ["containment_rate", "handover_rate", "csat_response_rate",
                             "handling_p50", "handling_p90"]
    assert r["groups"] == []


def _group_kpis(result):
    return {g["key"]: (g["label"], g["kpis"]) for g in result["groups"]}


def test_break_down_by_channel(log):
    r = _compute(by="channel")
    assert [g["key"] for g in r["groups"]] == ["web", "whatsapp", "telegram"]
    # web C1 C2 C6 C7 C9 C11: contained C1 C6 C9, handover C2 C7 C11; messages
    # 4+5+2+4+3+2 = 20, fallbacks 2+1 = 3; CSAT 5 2 5 (sum 12, 3 of 6); wait [10 30 45]:
    # p50 rank 2 = 30, p90 rank ceil(2.7) = 3 = 45; handling [200 300]: p50 rank 1 = 200,
    # p90 rank ceil(1.8) = 2 = 300.
    # whatsapp C3 C4 C8: one of each outcome; messages 3+2+2 = 7, fallbacks 2; CSAT 4 (1 of 3);
    # C8 had no agent, so no wait or handling.
    # telegram C5 C10: handover C5, abandoned C10; messages 3+1 = 4, fallback 1; CSAT 3 (1/2);
    # wait [120], handling [600].
    assert _group_kpis(r) == {
        "web": ("web", {**no_tasks(6), "conversations": 6, "containment_rate": 3 / 6,
                        "handover_rate": 3 / 6,
                        "fallback_rate": 3 / 20, "abandonment_rate": 0 / 6,
                        "csat_average": 12 / 3, "csat_response_rate": 3 / 6,
                        "wait_p50": 30, "wait_p90": 45, "handling_p50": 200,
                        "handling_p90": 300}),
        "whatsapp": ("whatsapp", {**no_tasks(3), "conversations": 3, "containment_rate": 1 / 3,
                                  "handover_rate": 1 / 3, "fallback_rate": 2 / 7,
                                  "abandonment_rate": 1 / 3, "csat_average": 4 / 1,
                                  "csat_response_rate": 1 / 3, "wait_p50": None,
                                  "wait_p90": None, "handling_p50": None,
                                  "handling_p90": None}),
        "telegram": ("telegram", {**no_tasks(2), "conversations": 2, "containment_rate": 0 / 2,
                                  "handover_rate": 1 / 2, "fallback_rate": 1 / 4,
                                  "abandonment_rate": 1 / 2, "csat_average": 3 / 1,
                                  "csat_response_rate": 1 / 2, "wait_p50": 120,
                                  "wait_p90": 120, "handling_p50": 600,
                                  "handling_p90": 600}),
    }
    # the period's own figures do not change with a break-down
    assert r["kpis"] == _compute()["kpis"]


def test_break_down_by_language(log):
    r = _compute(by="language")
    assert [g["key"] for g in r["groups"]] == ["it", "en"]
    # it: C1 C2 C3 C5 C7 C8 C9 C11 = 8; contained C1 C3 C9, handover C2 C5 C7 C8 C11;
    # messages 4+5+3+3+4+2+3+2 = 26, fallbacks 2+1+1 = 4; CSAT 5 2 4 3 5 (19, 5 of 8); the
    # waits and handling times are all Italian: same percentiles as the period.
    # en: C4 C6 C10 = 3; contained C6, abandoned C4 C10; messages 2+2+1 = 5, fallbacks 1+1 = 2;
    # no rating (response 0/3), no handover.
    assert _group_kpis(r) == {
        "it": ("it", {**no_tasks(8), "conversations": 8, "containment_rate": 3 / 8,
                      "handover_rate": 5 / 8,
                      "fallback_rate": 4 / 26, "abandonment_rate": 0 / 8,
                      "csat_average": 19 / 5, "csat_response_rate": 5 / 8, "wait_p50": 30,
                      "wait_p90": 120, "handling_p50": 300, "handling_p90": 600}),
        "en": ("en", {**no_tasks(3), "conversations": 3, "containment_rate": 1 / 3,
                      "handover_rate": 0 / 3,
                      "fallback_rate": 2 / 5, "abandonment_rate": 2 / 3, "csat_average": None,
                      "csat_response_rate": 0 / 3, "wait_p50": None, "wait_p90": None,
                      "handling_p50": None, "handling_p90": None}),
    }


def test_break_down_by_persona(log):
    r = _compute(by="persona")
    # family 4, digital 3, senior 2, then anonymous and business with 1 (by label)
    assert [g["key"] for g in r["groups"]] == ["family", "digital", "senior", None, "business"]
    # family C1 C2 C8 C9: contained C1 C9, handover C2 C8; messages 4+5+2+3 = 14, fb 2;
    #   CSAT 5 2 5 (12, 3 of 4); wait [30], handling [200].
    # digital C3 C4 C10: contained C3, abandoned C4 C10; messages 3+2+1 = 6, fb 3; CSAT 4 (1/3).
    # senior C5 C11: both handovers; messages 3+2 = 5, fb 0; CSAT 3 (1/2); wait [45 120]:
    #   p50 rank ceil(1) = 1 -> 45, p90 rank ceil(1.8) = 2 -> 120; handling [600].
    # anonymous C6: contained; messages 2, fb 0; no rating.
    # business C7: handover; messages 4, fb 1; no rating; wait [10], handling [300].
    none = {"wait_p50": None, "wait_p90": None, "handling_p50": None, "handling_p90": None}
    assert _group_kpis(r) == {
        "family": ("family", {**no_tasks(4), "conversations": 4, "containment_rate": 2 / 4,
                              "handover_rate": 2 / 4, "fallback_rate": 2 / 14,
                              "abandonment_rate": 0 / 4, "csat_average": 12 / 3,
                              "csat_response_rate": 3 / 4, "wait_p50": 30, "wait_p90": 30,
                              "handling_p50": 200, "handling_p90": 200}),
        "digital": ("digital", {**no_tasks(3), "conversations": 3, "containment_rate": 1 / 3,
                                "handover_rate": 0 / 3, "fallback_rate": 3 / 6,
                                "abandonment_rate": 2 / 3, "csat_average": 4 / 1,
                                "csat_response_rate": 1 / 3, **none}),
        "senior": ("senior", {**no_tasks(2), "conversations": 2, "containment_rate": 0 / 2,
                              "handover_rate": 2 / 2, "fallback_rate": 0 / 5,
                              "abandonment_rate": 0 / 2, "csat_average": 3 / 1,
                              "csat_response_rate": 1 / 2, "wait_p50": 45, "wait_p90": 120,
                              "handling_p50": 600, "handling_p90": 600}),
        None: ("anonymous", {**no_tasks(1), "conversations": 1, "containment_rate": 1 / 1,
                             "handover_rate": 0 / 1, "fallback_rate": 0 / 2,
                             "abandonment_rate": 0 / 1, "csat_average": None,
                             "csat_response_rate": 0 / 1, **none}),
        "business": ("business", {**no_tasks(1), "conversations": 1, "containment_rate": 0 / 1,
                                  "handover_rate": 1 / 1, "fallback_rate": 1 / 4,
                                  "abandonment_rate": 0 / 1, "csat_average": None,
                                  "csat_response_rate": 0 / 1, "wait_p50": 10, "wait_p90": 10,
                                  "handling_p50": 300, "handling_p90": 300}),
    }


def test_break_down_by_journey_stage(log):
    r = _compute(by="stage")
    # A conversation is in every stage of its intents (greet is "conversation"):
    # self_care C1 C2 C3 C4 C5 C7 C8 C9 C11 = 9; conversation C1 C2 C4 C5 C6 = 5;
    # feedback C7 C9 = 2; information C6 = 1; no intent understood C10 = 1.
    assert [(g["key"], g["label"]) for g in r["groups"]] == [
        ("self_care", "use & self-care"), ("conversation", "conversation"),
        ("feedback", "feedback & loyalty"), ("information", "information & purchase"),
        (None, "no intent understood")]
    # self_care: contained C1 C3 C9, handover C2 C5 C7 C8 C11, abandoned C4; messages
    #   4+5+3+2+3+4+2+3+2 = 28, fb C2 2 + C3 C4 C7 = 5; CSAT 5 2 4 3 5 (19, 5 of 9); all the
    #   waits and handling times of the period: 30/120 and 300/600.
    # conversation: contained C1 C6, handover C2 C5, abandoned C4; messages 4+5+2+3+2 = 16,
    #   fb 2+1 = 3; CSAT 5 2 3 (10, 3 of 5); wait [30 120]: p50 rank 1 = 30, p90 rank 2 = 120;
    #   handling [200 600]: 200, 600.
    # feedback: contained C9, handover C7; messages 4+3 = 7, fb 1; CSAT 5 (1 of 2); wait [10],
    #   handling [300].
    # information: C6 contained; 2 messages, no fallback, no rating.
    # none: C10 abandoned; 1 message, 1 fallback.
    none = {"wait_p50": None, "wait_p90": None, "handling_p50": None, "handling_p90": None}
    assert {k: v[1] for k, v in _group_kpis(r).items()} == {
        "self_care": {**no_tasks(9), "conversations": 9, "containment_rate": 3 / 9,
                      "handover_rate": 5 / 9,
                      "fallback_rate": 5 / 28, "abandonment_rate": 1 / 9,
                      "csat_average": 19 / 5, "csat_response_rate": 5 / 9, "wait_p50": 30,
                      "wait_p90": 120, "handling_p50": 300, "handling_p90": 600},
        "conversation": {**no_tasks(5), "conversations": 5, "containment_rate": 2 / 5,
                         "handover_rate": 2 / 5,
                         "fallback_rate": 3 / 16, "abandonment_rate": 1 / 5,
                         "csat_average": 10 / 3, "csat_response_rate": 3 / 5, "wait_p50": 30,
                         "wait_p90": 120, "handling_p50": 200, "handling_p90": 600},
        "feedback": {**no_tasks(2), "conversations": 2, "containment_rate": 1 / 2,
                     "handover_rate": 1 / 2,
                     "fallback_rate": 1 / 7, "abandonment_rate": 0 / 2, "csat_average": 5 / 1,
                     "csat_response_rate": 1 / 2, "wait_p50": 10, "wait_p90": 10,
                     "handling_p50": 300, "handling_p90": 300},
        "information": {**no_tasks(1), "conversations": 1, "containment_rate": 1 / 1,
                        "handover_rate": 0 / 1,
                        "fallback_rate": 0 / 2, "abandonment_rate": 0 / 1,
                        "csat_average": None, "csat_response_rate": 0 / 1, **none},
        None: {**no_tasks(1), "conversations": 1, "containment_rate": 0 / 1, "handover_rate": 0 / 1,
               "fallback_rate": 1 / 1, "abandonment_rate": 1 / 1, "csat_average": None,
               "csat_response_rate": 0 / 1, **none},
    }


def test_filters(log):
    # web + Italian: C1 C2 C7 C9 C11; contained C1 C9, handover C2 C7 C11; messages
    # 4+5+4+3+2 = 18, fb 2+1 = 3; CSAT 5 2 5 (12, 3 of 5); wait [10 30 45] -> 30, 45;
    # handling [200 300] -> 200, 300.
    r = _compute(filters={"channel": "web", "language": "it", "persona": ""})
    assert r["filters"] == {"channel": "web", "language": "it"}
    assert r["kpis"] == {**no_tasks(5), "conversations": 5, "containment_rate": 2 / 5,
                         "handover_rate": 3 / 5,
                         "fallback_rate": 3 / 18, "abandonment_rate": 0 / 5,
                         "csat_average": 12 / 3, "csat_response_rate": 3 / 5, "wait_p50": 30,
                         "wait_p90": 45, "handling_p50": 200, "handling_p90": 300}
    assert [d["conversations"] for d in r["volume_by_day"]] == [2, 0, 0, 1, 1, 0, 1]
    # stage feedback: C7 C9 (each also has check_bill; the filter keeps all their intents)
    r = _compute(filters={"stage": "feedback"})
    assert r["kpis"]["conversations"] == 2
    assert [(i["intent"], i["conversations"]) for i in r["top_intents"]] == [
        ("check_bill", 2), ("file_complaint", 1), ("give_feedback", 1)]
    # family + self-care, broken down by channel: C1 C2 C9 on web, C8 on WhatsApp
    r = _compute(filters={"persona": "family", "stage": "self_care"}, by="channel")
    assert [(g["key"], g["kpis"]["conversations"], g["kpis"]["handover_rate"])
            for g in r["groups"]] == [("web", 3, 1 / 3), ("whatsapp", 1, 1 / 1)]
    # nothing matches: no rates, zero volume, empty lists
    r = _compute(filters={"persona": "business", "language": "en"})
    assert r["kpis"] == {**no_tasks(0), "conversations": 0, "containment_rate": None,
                         "handover_rate": None,
                         "fallback_rate": None, "abandonment_rate": None,
                         "csat_average": None, "csat_response_rate": None, "wait_p50": None,
                         "wait_p90": None, "handling_p50": None, "handling_p90": None}
    assert r["top_intents"] == [] and r["handover_reasons"] == []
    assert sum(d["conversations"] for d in r["volume_by_day"]) == 0


def test_period_over_period_by_channel(log):
    r = _compare(by="channel")
    groups = {g["key"]: {k["key"]: k for k in g["kpis"]} for g in r["groups"]}
    assert list(groups) == ["web", "whatsapp", "telegram"]
    # previous web P1 P2 P5: contained P1 P2, abandoned P5; messages 3+2+2 = 7, fb 2;
    # CSAT 2 4 (6, 2 of 3); no handover.
    web = groups["web"]
    expected = {
        "conversations": (6, 3, 3, False),
        "containment_rate": (3 / 6, 2 / 3, 3 / 6 - 2 / 3, True),     # -1/6
        "handover_rate": (3 / 6, 0 / 3, 3 / 6, True),                # +1/2
        "fallback_rate": (3 / 20, 2 / 7, 3 / 20 - 2 / 7, False),     # -19/140
        "abandonment_rate": (0 / 6, 1 / 3, -1 / 3, False),
        "csat_average": (4.0, 3.0, 1.0, False),
        "csat_response_rate": (3 / 6, 2 / 3, 3 / 6 - 2 / 3, True),  # -1/6
        "wait_p50": (30, None, None, False),  # no handover before: no change, not worse
        "handling_p90": (300, None, None, False),
    }
    for key, (value, previous, change, worse) in expected.items():
        k = web[key]
        assert (k["value"], k["previous"], k["worse"]) == (value, previous, worse), key
        if change is None:
            assert k["change"] is None
        else:
            assert k["change"] == pytest.approx(change, abs=1e-12), key
    # previous telegram P4: wait 200 -> now 120 (better); handling 100 -> 600 (worse)
    assert groups["telegram"]["wait_p50"]["change"] == -80
    assert not groups["telegram"]["wait_p50"]["worse"]
    assert groups["telegram"]["handling_p50"]["worse"]


def test_groups_of_one_period_only(log):
    # A group of one period only still shows, with 0 conversations in the other.
    # persona=digital by language: now it C3, en C4 C10; before it P3 only.
    r = _compare(filters={"persona": "digital"}, by="language")
    groups = {g["key"]: {k["key"]: k for k in g["kpis"]} for g in r["groups"]}
    assert list(groups) == ["en", "it"]
    assert groups["en"]["conversations"]["previous"] == 0
    assert groups["en"]["conversations"]["change"] == 2
    assert groups["en"]["containment_rate"]["change"] is None
    # and the other way round: 2026-03-30..04-05 has only X2; its previous period is the current
    with session_scope() as db:
        r = kpis.compare(db, date(2026, 3, 30), date(2026, 4, 5), by="channel")
    assert [(g["key"], g["kpis"][0]["value"], g["kpis"][0]["previous"]) for g in r["groups"]] \
        == [("web", 1, 6), ("whatsapp", 0, 3), ("telegram", 0, 2)]  # X2 is on 03-30


def test_bad_input(log):
    with session_scope() as db:
        for call, message in [
                (lambda: kpis.compute(db, date(2026, 3, 2), date(2026, 3, 1)), "before"),
                (lambda: kpis.compute(db, date(2025, 1, 1), date(2026, 3, 1)), "366"),
                (lambda: kpis.compute(db, *CURRENT, filters={"colour": "red"}), "unknown"),
                (lambda: kpis.compute(db, *CURRENT, filters={"language": "fr"}), "language"),
                (lambda: kpis.compute(db, *CURRENT, filters={"persona": "x"}), "persona"),
                (lambda: kpis.compute(db, *CURRENT, filters={"stage": "x"}), "stage"),
                (lambda: kpis.compute(db, *CURRENT, filters={"channel": "fax"}),
                 "channel: one of web"),
                (lambda: kpis.compute(db, *CURRENT, by="intent"), "by must be")]:
            with pytest.raises(ValueError, match=message):
                call()
        assert kpis.known_channels(db) == ["telegram", "web", "whatsapp"]


def test_kpis_of_conversations_built_from_rasa_events(database):
    """The KPIs agree with the outcomes the log builds from real Rasa events."""
    from bot.analytics.ingest import apply_events, sweep

    t = datetime(2026, 3, 24, 9, 0, tzinfo=timezone.utc).timestamp()

    def user(text, intent, at):
        return {"event": "user", "text": text, "timestamp": at, "input_channel": "rest",
                "parse_data": {"intent": {"name": intent, "confidence": 0.9}, "entities": []}}

    events = [
        # a: greet, then a bill question answered: contained; rated 4
        ("a", {"event": "session_started", "timestamp": t}),
        ("a", user("ciao", "greet", t + 1)),
        ("a", user("la mia bolletta", "check_bill", t + 5)),
        ("a", {"event": "slot", "name": "rating", "value": 4, "timestamp": t + 9}),
        # b: a misunderstood message, then silence: abandoned once idle
        ("b", {"event": "session_started", "timestamp": t}),
        ("b", user("ciao", "greet", t + 1)),
        ("b", user("asdfgh", "nlu_fallback", t + 3)),
        # c: asks for a person, nobody is there: handover (offered a callback)
        ("c", {"event": "session_started", "timestamp": t}),
        ("c", user("voglio un operatore", "request_human", t + 1)),
        ("c", {"event": "action", "name": "action_request_human", "timestamp": t + 2}),
        ("c", {"event": "bot", "text": "Nessun operatore", "timestamp": t + 3,
               "metadata": {"utter_action": "utter_handover_no_agent"}}),
    ]
    with session_scope() as db:
        apply_events(db, events)
    sweep(now=datetime.fromtimestamp(t, timezone.utc) + timedelta(hours=2))
    with session_scope() as db:
        r = kpis.compute(db, date(2026, 3, 24), date(2026, 3, 24))
    # 3 conversations: a contained, b abandoned, c handover; 5 customer messages, 1 fallback;
    # one rating (4) of 3 conversations; the no-agent handover has no wait.
    assert r["outcomes"] == {"contained": 1, "handover": 1, "abandoned": 1}
    assert r["kpis"]["fallback_rate"] == 1 / 5
    assert r["kpis"]["csat_average"] == 4.0
    assert r["kpis"]["csat_response_rate"] == 1 / 3
    assert r["kpis"]["wait_p50"] is None
    assert r["handover_reasons"] == [{"reason": "request_human", "conversations": 1}]
    assert r["volume_by_channel"] == [{"channel": "web", "conversations": 3}]


def test_asking_for_a_person_is_not_a_failing_intent(database):
    """Five conversations where the customer asks for a person, each a handover: the intent is a
    top intent, but never one that "fails" (the handover is what was asked for)."""
    from bot.analytics.ingest import apply_events

    def user(text, intent, at):
        return {"event": "user", "text": text, "timestamp": at, "input_channel": "rest",
                "parse_data": {"intent": {"name": intent, "confidence": 0.9}, "entities": []}}

    t = datetime(2026, 3, 24, 10, 0, tzinfo=timezone.utc).timestamp()
    events = []
    for i in range(5):
        s = f"h{i}"
        events += [(s, {"event": "session_started", "timestamp": t + i}),
                   (s, user("voglio un operatore", "request_human", t + i + 0.5)),
                   (s, {"event": "pause", "timestamp": t + i + 0.7})]
    with session_scope() as db:
        apply_events(db, events)
        r = kpis.compute(db, date(2026, 3, 24), date(2026, 3, 24))
    assert r["outcomes"]["handover"] == 5
    assert [x["intent"] for x in r["top_intents"]] == ["request_human"]
    assert r["failing_intents"] == []
