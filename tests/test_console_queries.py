"""The review console's queries (bot.analytics.queries) on SQLite and PostgreSQL: every filter,
sorting, pagination, full-text search (accents, hostile input, the index used), the CX lead's
tags, notes, reviewed flag and annotations, the exports (all rows, masked text only), the
reveal window, and speed on 100,000 conversations. Conversations are built from real Rasa event
dicts through the log's own ingest (`apply_events`)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import event, func, select

from bot.analytics import queries as q
from bot.analytics.ingest import apply_events
from bot.analytics.models import (
    INTENT_STAGE,
    Conversation,
    ConversationNote,
    MessageAnnotation,
    RevealAudit,
)
from bot.persistence.db import session_scope

T0 = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC = 22:26:40 in Rome (CEST)
DAY = 86400.0
RAW_EMAIL = "mario.rossi@example.it"
RAW_PHONE = "+39 333 1234567"


def user(text, intent, at, confidence=0.95, channel="rest", entities=()):
    return {"event": "user", "text": text, "timestamp": T0 + at, "input_channel": channel,
            "parse_data": {"intent": {"name": intent, "confidence": confidence},
                           "entities": list(entities)}}


def bot(text, at, **metadata):
    return {"event": "bot", "text": text, "timestamp": T0 + at,
            "metadata": {"utter_action": "utter_x", **metadata}}


def action(name, at):
    return {"event": "action", "name": name, "timestamp": T0 + at}


def slot(name, value, at):
    return {"event": "slot", "name": name, "value": value, "timestamp": T0 + at}


def session(at):
    return [action("action_session_start", at), {"event": "session_started", "timestamp": T0 + at},
            action("action_listen", at)]


def apply(events):
    with session_scope() as db:
        apply_events(db, events)


def of(sender, events):
    return [(sender, e) for e in events]


@pytest.fixture
def corpus(database):
    """Five listed conversations and an empty one; their ids by name."""
    apply(of("s-a", session(0) + [
        slot("language", "it", 0.1), slot("persona", "family", 0.2),
        slot("customer_code", "C1000001", 0.3),
        user(f"perché la bolletta è così alta? scrivete a {RAW_EMAIL}", "explain_bill", 1,
             confidence=0.81, entities=[{"entity": "email", "value": RAW_EMAIL}]),
        action("action_explain_bill", 1.5), bot("Ecco il dettaglio della bolletta.", 2),
        user("quanto devo pagare?", "check_bill", 3),
        slot("rating", 5, 4), user("servizio ottimo, grazie", "give_feedback", 5),
    ]) + of("s-b", session(5400) + [  # 23:56 in Rome, still 28 May
        slot("language", "en", 5400.1), slot("persona", "business", 5400.2),
        user("I have a question about my contract in città", "contract_info", 5401,
             channel="whatsapp"),
        {"event": "pause", "timestamp": T0 + 5402},
        bot("Hello, I'm Giulia from Luce Nord.", 5403, agent="Giulia"),
        user(f"thanks, call me at {RAW_PHONE}", "thank_you", 5404, channel="whatsapp"),
        {"event": "resume", "timestamp": T0 + 5405}, slot("rating", 2, 5406),
    ]) + of("s-c", session(7200) + [  # 00:26 in Rome, 29 May
        user("asdfgh qwerty", "nlu_fallback", 7201, confidence=0.2, channel="telegram"),
        bot("Non ho capito.", 7202),
    ] + session(10800) + [  # the same sender again: the first session ends, abandoned
        user("ciao", "greet", 10801, channel="telegram"), bot("Ciao!", 10802),
    ]) + of("s-d", session(3 * DAY) + [  # 31 May
        slot("language", "it", 3 * DAY + 0.1), slot("persona", "senior", 3 * DAY + 0.2),
        user("Opzione a or b, grazie: la bolletta arriva per posta", "activate_ebill",
             3 * DAY + 1, channel="socketio"),
        bot("Attivo la bolletta via e-mail.", 3 * DAY + 2),
    ]) + of("s-e", session(100) + [bot("Ciao! Come posso aiutarti?", 101)]))
    with session_scope() as db:
        rows = db.execute(select(Conversation.id, Conversation.sender_id)
                          .order_by(Conversation.id)).all()
    ids = {}
    for cid, sender in rows:
        name = sender[-1]
        ids[name + ("2" if name in ids else "")] = cid
    return ids  # a, b, c (abandoned), c2, d, e (no turns)


def listed(filters=None, sort="-started_at", page=1, per_page=50):
    with session_scope() as db:
        return q.list_conversations(db, filters or q.Filters(), sort, page, per_page)


def ids_of(filters=None, sort="-started_at"):
    return [r["id"] for r in listed(filters, sort).rows]


def names(corpus, ids):
    by_id = {v: k for k, v in corpus.items()}
    return {by_id[i] for i in ids}


# ---- filters -------------------------------------------------------------------------------


def test_filters_from_query_string_values():
    f = q.Filters.from_args({"date_from": "2026-05-01", "date_to": "2026-05-31", "channel": "Web",
                             "language": "en", "persona": "senior", "intent": "check_bill",
                             "stage": "self_care", "outcome": "handover", "csat": "4",
                             "tag": " great ", "reviewed": "no", "customer_code": "c1000001",
                             "q": "  bolletta alta ", "page": "3", "sort": "-turns"})
    assert f == q.Filters(date(2026, 5, 1), date(2026, 5, 31), "web", "en", "senior",
                          "check_bill", "self_care", "handover", 4, "great", False, "C1000001",
                          "bolletta alta")
    assert q.Filters.from_args(f.to_args()) == f
    assert q.Filters.from_args({"channel": "", "csat": "  ", "q": ""}) == q.Filters()
    assert q.Filters.from_args({"reviewed": ["yes"]}).reviewed is True  # Sanic's lists


@pytest.mark.parametrize("args, message", [
    ({"date_from": "28/05/2026"}, "date_from: a date as YYYY-MM-DD"),
    ({"date_to": "tomorrow"}, "date_to: a date as YYYY-MM-DD"),
    ({"date_from": "2026-06-02", "date_to": "2026-06-01"}, "date_from: must not be after"),
    ({"channel": "fax"}, "channel: one of web, whatsapp"),
    ({"language": "de"}, "language: one of it, en"),
    ({"persona": "student"}, "persona: one of family"),
    ({"intent": "buy_pizza"}, "intent: one of"),
    ({"stage": "purchase"}, "stage: one of information"),
    ({"outcome": "lost"}, "outcome: one of contained, handover, abandoned"),
    ({"csat": "6"}, "csat: a rating from 1 to 5"),
    ({"csat": "4.5"}, "csat: a rating from 1 to 5"),
    ({"tag": "x" * 41}, "tag: at most 40 characters"),
    ({"reviewed": "maybe"}, "reviewed: yes or no"),
    ({"customer_code": "C12"}, "customer_code: C followed by 7 digits"),
    ({"q": "w " * 150}, "q: at most 200 characters"),
])
def test_bad_filter_values_are_refused_with_a_clear_message(args, message):
    with pytest.raises(ValueError, match=message):
        q.Filters.from_args(args)


@pytest.mark.parametrize("args", [{"channel": "fax"}, {"language": "fr"}, {"persona": "robot"},
                                  {"stage": "checkout"}, {"channel": "x" * 20}])
def test_the_console_and_the_dashboard_filter_by_the_same_rules(args):
    from bot.analytics import kpis

    with pytest.raises(ValueError) as console:
        q.Filters.from_args(args)
    with pytest.raises(ValueError) as dashboard:
        kpis.check_filters(args)
    assert str(console.value) == str(dashboard.value)
    assert str(console.value).startswith(f"{next(iter(args))}: one of ")
    good = {"channel": "WhatsApp", "language": "en", "persona": "senior", "stage": "self_care"}
    assert kpis.check_filters(good) == q.Filters.from_args(good).to_args() == {
        "channel": "whatsapp", "language": "en", "persona": "senior", "stage": "self_care"}


def test_every_bad_value_is_named_at_once():
    with pytest.raises(ValueError) as err:
        q.Filters.from_args({"csat": "0", "language": "fr", "date_from": "x"})
    assert all(name in str(err.value) for name in ("csat:", "language:", "date_from:"))


def test_only_conversations_with_a_customer_turn_are_listed(corpus):
    page = listed()
    assert page.total == 5
    assert names(corpus, [r["id"] for r in page.rows]) == {"a", "b", "c", "c2", "d"}


FILTER_CASES = [
    ({}, {"a", "b", "c", "c2", "d"}),
    ({"date_from": "2026-05-29"}, {"c", "c2", "d"}),  # Rome days: 00:26 on the 29th
    ({"date_to": "2026-05-28"}, {"a", "b"}),  # 23:56 in Rome is still the 28th
    ({"date_from": "2026-05-29", "date_to": "2026-05-29"}, {"c", "c2"}),
    ({"date_from": "2026-05-31", "date_to": "2026-05-31"}, {"d"}),
    ({"date_from": "2026-06-01"}, set()),
    ({"channel": "web"}, {"a", "d"}),
    ({"channel": "whatsapp"}, {"b"}),
    ({"channel": "telegram"}, {"c", "c2"}),
    ({"language": "en"}, {"b"}),
    ({"language": "it"}, {"a", "c", "c2", "d"}),
    ({"persona": "family"}, {"a"}),
    ({"persona": "business"}, {"b"}),
    ({"persona": "senior"}, {"d"}),
    ({"intent": "check_bill"}, {"a"}),
    ({"intent": "contract_info"}, {"b"}),
    ({"intent": "greet"}, {"c2"}),
    ({"intent": "thank_you"}, set()),  # said to the agent: not an intent of the bot's turns
    ({"stage": "self_care"}, {"a", "d"}),
    ({"stage": "information"}, {"b"}),
    ({"stage": "feedback"}, {"a"}),
    ({"stage": "conversation"}, {"c2"}),
    ({"outcome": "contained"}, {"a", "c2", "d"}),
    ({"outcome": "handover"}, {"b"}),
    ({"outcome": "abandoned"}, {"c"}),
    ({"csat": "5"}, {"a"}),
    ({"csat": "2"}, {"b"}),
    ({"csat": "3"}, set()),
    ({"customer_code": "C1000001"}, {"a"}),
    ({"customer_code": "C1000002"}, set()),
    ({"channel": "web", "stage": "self_care", "persona": "senior"}, {"d"}),
    ({"language": "it", "outcome": "contained", "date_to": "2026-05-29"}, {"a", "c2"}),
]


def test_each_filter(corpus):
    wrong = {}
    for args, expected in FILTER_CASES:
        page = listed(q.Filters.from_args(args))
        found = names(corpus, [r["id"] for r in page.rows])
        if found != expected or page.total != len(expected):
            wrong[str(args)] = (found, page.total, expected)
    assert not wrong


def test_rows_carry_outcome_csat_intents_stages_and_tags(corpus):
    with session_scope() as db:
        q.add_tag(db, corpus["a"], "great")
        q.add_tag(db, corpus["a"], "missing skill")
    row = next(r for r in listed().rows if r["id"] == corpus["a"])
    assert row["outcome"] == "contained" and row["csat"] == 5
    assert row["csat_comment"] == "servizio ottimo, grazie"
    assert set(row["intents"]) == {"explain_bill", "check_bill", "give_feedback"}
    assert set(row["stages"]) == {"self_care", "feedback"}
    assert row["tags"] == ["great", "missing skill"]
    assert (row["channel"], row["language"], row["persona"], row["customer_code"]) == (
        "web", "it", "family", "C1000001")
    assert row["turns"] == 3 and row["fallbacks"] == 0
    assert "sender_id" not in row  # a WhatsApp sender id is a phone number
    b = next(r for r in listed().rows if r["id"] == corpus["b"])
    assert b["handed_over"] is True and b["outcome"] == "handover"


# ---- sorting and pages ---------------------------------------------------------------------


SORT_CASES = [
    ("-started_at", ["d", "c2", "c", "b", "a"]),
    ("started_at", ["a", "b", "c", "c2", "d"]),
    ("-turns", ["a", "d", "c2", "c", "b"]),  # ties: newest id first
    ("turns", ["b", "c", "c2", "d", "a"]),
    ("-fallbacks", ["c", "d", "c2", "b", "a"]),
    ("csat", ["b", "a", "c", "c2", "d"]),  # unrated last
    ("-csat", ["a", "b", "d", "c2", "c"]),
    ("outcome", ["c", "a", "c2", "d", "b"]),
    ("-outcome", ["b", "d", "c2", "a", "c"]),
    ("channel", ["c", "c2", "a", "d", "b"]),
    ("-channel", ["b", "d", "a", "c2", "c"]),
]


def test_sorting(corpus):
    by_id = {v: k for k, v in corpus.items()}
    wrong = {}
    for sort, expected in SORT_CASES:
        found = [by_id[i] for i in ids_of(sort=sort)]
        if found != expected:
            wrong[sort] = (found, expected)
    assert not wrong
    for sort in ("name", "-id", "started_at; DROP TABLE conversations", "--turns", "+turns"):
        with pytest.raises(ValueError, match="sort: one of started_at, turns, fallbacks, csat"):
            listed(sort=sort)


def test_pages(database):
    apply([(f"p-{i:02d}", e) for i in range(60)
           for e in session(i * 60) + [user(f"messaggio {i}", "check_bill", i * 60 + 1)]])
    first = listed(per_page=25)
    assert (first.total, first.page, first.per_page, first.pages) == (60, 1, 25, 3)
    seen = []
    for n in (1, 2, 3):
        seen += [r["id"] for r in listed(page=n, per_page=25).rows]
    assert len(seen) == 60 and len(set(seen)) == 60
    assert seen == ids_of()[:50] + seen[50:]  # the pages follow the order
    assert len(listed(page=3, per_page=25).rows) == 10
    assert listed(page=4, per_page=25).rows == []
    assert listed(page=4, per_page=25).total == 60
    assert len(listed().rows) == 50  # the default page size
    for bad in ({"page": 0}, {"per_page": 0}, {"per_page": 501}):
        with pytest.raises(ValueError):
            listed(**bad)
    # the exports hold every matching conversation, not a page
    with session_scope() as db:
        assert len(list(csv.DictReader(io.StringIO(q.export_list_csv(db, q.Filters()))))) == 60
        data = json.loads(q.export_list_json(db, q.Filters()))
        assert data["total"] == 60 and len(data["conversations"]) == 60
        chunked = [r["id"] for r in q.iter_conversations(db, q.Filters(), "turns", chunk=7)]
    assert chunked == ids_of(sort="turns")[:50] + chunked[50:] and len(set(chunked)) == 60


# ---- full-text search ----------------------------------------------------------------------


SEARCH_CASES = [
    ("bolletta", {"a", "d"}),
    ("BOLLETTA", {"a", "d"}),
    ("perché", {"a"}),
    ("perche", {"a"}),  # without the accent
    ("così alta", {"a"}),
    ("cosi alta", {"a"}),
    ("citta", {"b"}),
    ("città", {"b"}),
    ("contract", {"b"}),
    ("dettaglio", {"a"}),  # the bot's lines are searched too
    ("bolletta posta", {"d"}),  # every word, in the same message
    ("bolletta telefono", set()),
    ('"a OR b*', {"d"}),  # operators are words: "a", "or", "b"
    ("a OR b", {"d"}),
    ("opzione*", {"d"}),
    ("email", {"a"}),  # the masked label
    ("mario", set()),  # the e-mail address itself is not stored
    ("333", set()),
    ("asdfgh", {"c"}),
    ("ciao", {"c2"}),
]
EVERY = {"a", "b", "c", "c2", "d"}  # no word in the query: no search condition
# Hostile input and what it finds: only its words count ([^\W_]+, lower case), every word in
# the same message, whatever the backend's query syntax.
HOSTILE = [
    ('"', EVERY), ("'", EVERY), ('"a OR b*', {"d"}), ("*", EVERY), ("bolletta*", {"a", "d"}),
    ("NEAR(bolletta posta)", set()),  # "near" is a word too
    ("a AND", set()), ("OR", {"d"}), ("NOT", set()), ("-bolletta", {"a", "d"}),
    ("text:bolletta", set()), ("^bolletta", {"a", "d"}), ("(", EVERY), (")", EVERY),
    ("{", EVERY), ("}", EVERY), ("[", EVERY), ("\\", EVERY), ("\\\\'", EVERY),
    ("'; DROP TABLE conversations; --", set()), ("&|!<->:*", EVERY),
    ("bolletta & !posta", {"d"}), ("%_", EVERY), ("\x00", EVERY), ("ü" * 30, set()),
    ("🙂 bolletta", {"a", "d"}), ("a" * 200, set()),
]


def test_search_finds_words(corpus):
    wrong = {}
    for query, expected in SEARCH_CASES:
        page = listed(q.Filters(q=query))
        found = names(corpus, [r["id"] for r in page.rows])
        if found != expected or page.total != len(expected):
            wrong[query] = (found, page.total, expected)
    assert not wrong


def test_hostile_search_input_is_safe(corpus):
    wrong = {}
    for query, expected in HOSTILE:
        page = listed(q.Filters(q=query))  # no error, whatever the backend's query syntax
        found = names(corpus, [r["id"] for r in page.rows])
        if found != expected or page.total != len(expected):
            wrong[query] = (found, page.total, expected)
    assert not wrong
    with session_scope() as db:
        assert db.execute(select(func.count()).select_from(Conversation)).scalar() == 6


def test_search_combines_with_the_other_filters(corpus):
    assert names(corpus, ids_of(q.Filters(q="bolletta", persona="senior"))) == {"d"}
    assert names(corpus, ids_of(q.Filters(q="bolletta", intent="check_bill"))) == {"a"}
    assert ids_of(q.Filters(q="bolletta", channel="whatsapp")) == []


def test_search_words_and_variants():
    assert q.search_words('"a OR b*') == ["a", "or", "b"]
    assert q.search_words("Perché? perché! PERCHÉ") == ["perché"]
    assert q.search_words("snake_case NEAR/3") == ["snake", "case", "near", "3"]
    assert q.fts5_query(["a", "or"]) == '"a" "or"'
    assert "perché" in q.accent_variants("perche") and "perche" in q.accent_variants("perché")
    assert "città" in q.accent_variants("citta") and "più" in q.accent_variants("piu")


class Statements:
    """The SQL statements run on the engine while the block runs."""

    def __init__(self, engine):
        self.engine, self.seen = engine, []

    def _record(self, conn, cursor, statement, parameters, context, executemany):
        self.seen.append((statement, parameters))

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._record)


def _explain(db, statement, parameters) -> str:
    conn = db.connection()
    if db.bind.dialect.name == "sqlite":
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
        return "\n".join(str(r[-1]) for r in rows)
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a tiny table: would scan anyway
    return "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement,
                                                        parameters).all())


def test_four_queries_whatever_the_page_size_and_the_indexes_used(corpus):
    with session_scope() as db:
        for c in (corpus["a"], corpus["b"], corpus["d"]):
            q.add_tag(db, c, "great")
    with session_scope() as db:
        engine = db.get_bind()
        with Statements(engine) as small:
            q.list_conversations(db, q.Filters(), per_page=2)
        with Statements(engine) as large:
            page = q.list_conversations(db, q.Filters(q="bolletta"), per_page=50)
        assert len(page.rows) == 2 and all(r["intents"] for r in page.rows)
        assert len(small.seen) == 4 and len(large.seen) == 4  # count, page, intents, tags
        count, _ = large.seen[0]
        assert "count(" in count.lower()
        plan = _explain(db, *large.seen[0])
        if db.bind.dialect.name == "sqlite":
            assert "VIRTUAL TABLE INDEX" in plan and "conversation_messages_fts" in plan, plan
        else:
            assert "to_tsvector('simple'::regconfig, conversation_messages.text) @@" in count
            assert "ix_conversation_messages_fts" in plan, plan
        plan = _explain(db, *small.seen[1])
        assert "ix_conversation_started" in plan, plan
        plan = _explain(db, *small.seen[2])
        assert "ix_conversation_intents_conversation_id" in plan or (
            "uq_conversation_intent" in plan), plan


# ---- tags, notes, reviewed, annotations ----------------------------------------------------


def test_tags(corpus):
    a = corpus["a"]
    with session_scope() as db:
        assert q.add_tag(db, a, "  wrong   answer ") == ["wrong answer"]
        assert q.add_tag(db, a, "wrong answer") == ["wrong answer"]  # once
        assert q.add_tag(db, a, "Bolletta gas: da rivedere") == ["Bolletta gas: da rivedere",
                                                                  "wrong answer"]
        assert q.add_tag(db, a, "x" * 40)[-1] == "x" * 40
        for bad in ("", "   ", "x" * 41, None):
            with pytest.raises(ValueError, match="tag:"):
                q.add_tag(db, a, bad)
        with pytest.raises(q.NotFound):
            q.add_tag(db, 999_999, "great")
    assert names(corpus, ids_of(q.Filters(tag="wrong answer"))) == {"a"}
    assert names(corpus, ids_of(q.Filters(tag="Bolletta gas: da rivedere"))) == {"a"}
    assert ids_of(q.Filters(tag="great")) == []
    with session_scope() as db:
        assert q.remove_tag(db, a, " wrong answer") == ["Bolletta gas: da rivedere", "x" * 40]
        assert q.remove_tag(db, a, "never there") == ["Bolletta gas: da rivedere", "x" * 40]
    assert ids_of(q.Filters(tag="wrong answer")) == []


def test_notes_are_masked_before_they_are_stored(corpus):
    with session_scope() as db:
        note = q.add_note(db, corpus["b"], f"  Richiamare {RAW_PHONE} o scrivere a {RAW_EMAIL},"
                                           " IBAN IT60X0542811101000000123456 ", "Lucia", None)
        with pytest.raises(ValueError, match="note: empty"):
            q.add_note(db, corpus["b"], "   ", "Lucia")
        with pytest.raises(ValueError, match="at most 4000"):
            q.add_note(db, corpus["b"], "x" * 4001, "Lucia")
    assert note["text"] == "Richiamare [PHONE] o scrivere a [EMAIL], IBAN [IBAN]"
    with session_scope() as db:
        stored = db.execute(select(ConversationNote.text, ConversationNote.author)).one()
    assert stored == ("Richiamare [PHONE] o scrivere a [EMAIL], IBAN [IBAN]", "Lucia")


def test_reviewed(corpus):
    from bot.desk.demo import seed_desk_users
    from bot.handover.models import DeskUser

    seed_desk_users()
    with session_scope() as db:
        lucia = db.execute(select(DeskUser.id).where(DeskUser.username == "lucia")).scalar()
        assert q.set_reviewed(db, corpus["a"], True, lucia) is True
    assert names(corpus, ids_of(q.Filters(reviewed=True))) == {"a"}
    assert names(corpus, ids_of(q.Filters(reviewed=False))) == {"b", "c", "c2", "d"}
    with session_scope() as db:
        record = q.get_conversation(db, corpus["a"])
        assert record["reviewed"] is True and record["reviewed_by"]
        assert q.set_reviewed(db, corpus["a"], False, lucia) is False
        assert q.get_conversation(db, corpus["a"])["reviewed_by"] is None
    assert ids_of(q.Filters(reviewed=True)) == []


def _lines(cid):
    with session_scope() as db:
        return q.get_conversation(db, cid)["messages"]


def test_annotations(corpus):
    b_customer = [m for m in _lines(corpus["b"]) if m["sender"] == "customer"][0]
    b_agent = [m for m in _lines(corpus["b"]) if m["sender"] == "agent"][0]
    a_customer = [m for m in _lines(corpus["a"]) if m["sender"] == "customer"][0]
    with session_scope() as db:
        done = q.annotate(db, corpus["b"], b_customer["id"], "file_complaint")
        assert (done["intent"], done["language"]) == ("file_complaint", "en")  # the conversation's
        q.annotate(db, corpus["b"], b_customer["id"], "contract_info")  # replaces it
        q.annotate(db, corpus["a"], a_customer["id"], "check_bill")
        with pytest.raises(ValueError, match="only the customer's messages"):
            q.annotate(db, corpus["b"], b_agent["id"], "greet")
        with pytest.raises(ValueError, match="intent: one of the domain's intents"):
            q.annotate(db, corpus["b"], b_customer["id"], "nlu_fallback")
        with pytest.raises(ValueError, match="intent"):
            q.annotate(db, corpus["b"], b_customer["id"], "")
        with pytest.raises(q.NotFound):  # a message of another conversation
            q.annotate(db, corpus["a"], b_customer["id"], "greet")
        with pytest.raises(q.NotFound):
            q.annotate(db, corpus["a"], 999_999, "greet")
    with session_scope() as db:
        rows = db.execute(select(MessageAnnotation.message_id, MessageAnnotation.intent,
                                 MessageAnnotation.language)
                          .order_by(MessageAnnotation.message_id)).all()
    assert sorted(rows) == sorted([(b_customer["id"], "contract_info", "en"),
                                   (a_customer["id"], "check_bill", "it")])
    line = next(m for m in _lines(corpus["b"]) if m["id"] == b_customer["id"])
    assert line["annotation"]["intent"] == "contract_info"
    with session_scope() as db:
        transcript = list(csv.DictReader(io.StringIO(q.export_conversation_csv(db, corpus["b"]))))
        assert next(r for r in transcript if r["message_id"] == str(b_customer["id"])
                    )["annotated_intent"] == "contract_info"
        assert q.remove_annotation(db, corpus["b"], b_customer["id"]) is True
        assert q.remove_annotation(db, corpus["b"], b_customer["id"]) is False
    assert next(m for m in _lines(corpus["b"]) if m["id"] == b_customer["id"])["annotation"] is None


def test_domain_intents_are_those_of_the_journey_stages():
    intents = q.domain_intents()
    assert set(INTENT_STAGE) <= set(intents)
    assert {"greet", "request_human", "out_of_scope", "inform", "give_feedback"} <= set(intents)
    assert "nlu_fallback" not in intents and len(intents) >= 25


# ---- one conversation and the exports ------------------------------------------------------


def test_one_conversation(corpus):
    with session_scope() as db:
        assert q.get_conversation(db, 999_999) is None
        q.add_note(db, corpus["b"], "agente gentile", "Lucia")
        q.add_tag(db, corpus["b"], "great")
        c = q.get_conversation(db, corpus["b"])
    assert (c["outcome"], c["language"], c["persona"], c["channel"], c["csat"]) == (
        "handover", "en", "business", "whatsapp", 2)
    assert [i["intent"] for i in c["intents"]] == ["contract_info"]
    assert c["intents"][0]["stage_label"] == "information & purchase"
    who = [(m["sender"], m["agent"], m["handover"]) for m in c["messages"]]
    assert who == [("customer", None, False),
                   ("event", None, True),  # the handover starts
                   ("agent", "Giulia", True), ("customer", None, True),
                   ("event", None, False)]  # and ends
    assert c["messages"][0]["intent"] == "contract_info"
    assert c["messages"][0]["confidence"] == pytest.approx(0.95)
    assert c["messages"][3]["text"] == "thanks, call me at [PHONE]"
    assert [t["tag"] for t in c["tags"]] == ["great"]
    assert [(n["author"], n["text"]) for n in c["notes"]] == [("Lucia", "agente gentile")]
    a = _lines(corpus["a"])
    assert a[0]["entities"] == [{"entity": "email", "value": "[EMAIL]"}]
    assert [m["sender"] for m in a] == ["customer", "action", "bot", "customer", "customer"]


def test_exports_content_and_masking(corpus):
    with session_scope() as db:
        q.add_note(db, corpus["a"], f"scrive da {RAW_EMAIL}", "Lucia")
        q.add_tag(db, corpus["a"], "=HYPERLINK(\"http://x\")")
        filters = q.Filters(language="it")
        listed_csv = q.export_list_csv(db, filters, "started_at")
        listed_json = json.loads(q.export_list_json(db, filters, "started_at"))
        one_json = q.export_conversation_json(db, corpus["a"])
        one_csv = q.export_conversation_csv(db, corpus["a"])
        b_json = q.export_conversation_json(db, corpus["b"])
        with pytest.raises(q.NotFound):
            q.export_conversation_csv(db, 999_999)
    rows = list(csv.DictReader(io.StringIO(listed_csv)))
    assert [int(r["id"]) for r in rows] == [corpus[n] for n in ("a", "c", "c2", "d")]
    assert list(rows[0]) == list(q.LIST_FIELDS)
    a = rows[0]
    assert (a["outcome"], a["csat"], a["channel"], a["persona"], a["reviewed"]) == (
        "contained", "5", "web", "family", "no")
    assert set(a["intents"].split("; ")) == {"explain_bill", "check_bill", "give_feedback"}
    assert a["tags"] == "'=HYPERLINK(\"http://x\")"  # a spreadsheet does not run it
    assert listed_json["total"] == 4 and listed_json["filters"] == {"language": "it"}
    assert [r["id"] for r in listed_json["conversations"]] == [int(r["id"]) for r in rows]
    assert listed_json["conversations"][0]["tags"] == ["=HYPERLINK(\"http://x\")"]
    one = json.loads(one_json)
    assert one["id"] == corpus["a"] and len(one["messages"]) == 5
    assert one["messages"][0]["text"] == ("perché la bolletta è così alta? scrivete a [EMAIL]")
    assert one["notes"][0]["text"] == "scrive da [EMAIL]"
    transcript = list(csv.DictReader(io.StringIO(one_csv)))
    assert [r["sender"] for r in transcript] == ["customer", "action", "bot", "customer",
                                                 "customer"]
    assert transcript[0]["intent"] == "explain_bill" and transcript[0]["confidence"] == "0.81"
    assert json.loads(transcript[0]["entities"]) == [{"entity": "email", "value": "[EMAIL]"}]
    for text in (listed_csv, json.dumps(listed_json), one_json, one_csv, b_json):
        assert RAW_EMAIL not in text and "mario" not in text
        assert "333 1234567" not in text and "3331234567" not in text
    assert "[EMAIL]" in one_csv and "[PHONE]" in b_json


# ---- reveal --------------------------------------------------------------------------------


def test_reveal_window_and_lines(corpus):
    raw = (session(7200) + [user("asdfgh qwerty", "nlu_fallback", 7201), bot("Non ho capito.",
                                                                            7202)]
           + session(10800) + [user(f"ciao sono {RAW_EMAIL}", "greet", 10801,
                                    entities=[{"entity": "email", "value": RAW_EMAIL}]),
                               bot("Ciao!", 10802), bot("Sono Giulia", 10803, agent="Giulia")])
    with session_scope() as db:
        sender, start, end = q.reveal_window(db, corpus["c"])
        assert sender == "s-c" and start == T0 + 7200 and end == pytest.approx(T0 + 7202)
        sender2, start2, end2 = q.reveal_window(db, corpus["c2"])
        assert start2 == T0 + 10800 and end2 is None  # still open
        with pytest.raises(q.NotFound):
            q.reveal_window(db, 999_999)
    first = q.reveal_lines(raw, start, end)
    assert [(x["sender"], x["text"]) for x in first] == [("customer", "asdfgh qwerty"),
                                                         ("bot", "Non ho capito.")]
    second = q.reveal_lines(raw, start2, end2)
    assert [(x["sender"], x["text"], x["agent"]) for x in second] == [
        ("customer", f"ciao sono {RAW_EMAIL}", None), ("bot", "Ciao!", None),
        ("agent", "Sono Giulia", "Giulia")]
    assert second[0]["entities"] == [{"entity": "email", "value": RAW_EMAIL}]
    # an open session ends where the next one starts
    assert len(q.reveal_lines(raw + session(20000) + [user("dopo", "greet", 20001)],
                              start2, None)) == 3


def test_a_reveal_is_recorded(corpus):
    with session_scope() as db:
        audit = q.record_reveal(db, corpus["a"], None, "admin", f"richiesta di {RAW_EMAIL}")
        with pytest.raises(q.NotFound):
            q.record_reveal(db, 999_999, None, "admin")
    with session_scope() as db:
        row = db.get(RevealAudit, audit)
        assert (row.conversation_id, row.username, row.reason) == (corpus["a"], "admin",
                                                                   "richiesta di [EMAIL]")
        assert datetime.now(timezone.utc) - row.at < timedelta(minutes=1)


# ---- 100,000 conversations -----------------------------------------------------------------

N = 100_000


def _bulk(database_url):
    """100,000 conversations with a message, an intent and some tags, generated by the database
    itself (the same SQL on both backends but for the date arithmetic)."""
    from sqlalchemy import text

    postgresql = database_url.startswith("postgresql")
    if postgresql:
        minutes = "TIMESTAMP '2026-01-01 00:00:00' + i * INTERVAL '1 minute'"
    else:  # the format SQLAlchemy stores on SQLite
        minutes = ("strftime('%Y-%m-%d %H:%M:%S', '2026-01-01 00:00:00', '+' || i || "
                   "' minutes') || '.000000'")
    series = f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {N - 1}) "
    statements = [
        series + "INSERT INTO conversations (id, sender_id, session_start, channel, language, "
        "persona, outcome, ended, turns, fallbacks, last_was_fallback, handed_over, csat, "
        "started_at, last_event_at, reviewed) SELECT i + 1, 'bulk-' || i, i, "
        "CASE i % 4 WHEN 0 THEN 'web' WHEN 1 THEN 'whatsapp' WHEN 2 THEN 'telegram' "
        "ELSE 'messenger' END, CASE WHEN i % 7 = 0 THEN 'en' ELSE 'it' END, 'family', "
        "CASE i % 3 WHEN 0 THEN 'contained' WHEN 1 THEN 'handover' ELSE 'abandoned' END, "
        "TRUE, i % 5, i % 2, FALSE, i % 3 = 1, CASE WHEN i % 2 = 1 THEN i % 5 + 1 END, "
        f"{minutes}, {minutes}, FALSE FROM n",
        series + "INSERT INTO conversation_messages (id, conversation_id, at, sender, text, "
        "fallback, handover) SELECT i + 1, i + 1, " + minutes + ", 'customer', "
        "CASE WHEN i % 1000 = 0 THEN 'perché questa bolletta è rarissima ' || i "
        "ELSE 'messaggio ' || i || ' sulla bolletta' END, FALSE, FALSE FROM n",
        series + "INSERT INTO conversation_intents (conversation_id, intent, stage, count) "
        "SELECT i + 1, CASE i % 5 WHEN 0 THEN 'check_bill' WHEN 1 THEN 'pay_bill' "
        "WHEN 2 THEN 'report_outage' WHEN 3 THEN 'contract_info' ELSE 'greet' END, "
        "CASE i % 5 WHEN 3 THEN 'information' WHEN 4 THEN 'conversation' ELSE 'self_care' END, "
        "1 FROM n",
        series + "INSERT INTO conversation_tags (conversation_id, tag, at) "
        f"SELECT i + 1, 'great', {minutes} FROM n WHERE i % 10 IN (0, 1)",
    ]
    with session_scope() as db:
        for statement in statements:
            db.execute(text(statement))
        if postgresql:
            db.execute(select(func.setval("conversations_id_seq", N)))
    if postgresql:
        from bot.persistence.db import get_engine

        with get_engine(database_url).connect().execution_options(
                isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    with session_scope() as db:  # what was generated is what the checks below expect
        assert db.execute(select(func.count()).select_from(Conversation)).scalar() == N
        newest = db.get(Conversation, N)
        assert newest.started_at == datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(
            minutes=N - 1)


def test_right_on_100000_conversations(database):
    """Counts, order and filters stay right at scale (speed is measured in bench/console.py)."""
    _bulk(database)
    listed_n = sum(1 for i in range(N) if i % 5)  # turns > 0

    page = listed(q.Filters())
    assert page.total == listed_n and len(page.rows) == 50
    assert page.rows[0]["id"] == N and page.rows[1]["id"] == N - 1  # the newest first
    rare = listed(q.Filters(q="rarissima"))
    assert rare.total == sum(1 for i in range(0, N, 1000) if i % 5)
    rare_accent = listed(q.Filters(q="perche rarissima", channel="web"))
    assert rare_accent.total == sum(1 for i in range(0, N, 1000) if i % 5 and i % 4 == 0)
    common = listed(q.Filters(q="bolletta", outcome="handover"), "-csat")
    assert common.total == sum(1 for i in range(N) if i % 5 and i % 3 == 1)
    tagged = listed(q.Filters(tag="great"), "turns")
    assert tagged.total == sum(1 for i in range(N) if i % 10 == 1)  # i % 10 == 0: no turns
    assert all(r["tags"] == ["great"] and r["turns"] == 1 for r in tagged.rows)
    tagged = listed(q.Filters(tag="great", intent="pay_bill"), "turns")
    assert tagged.total == sum(1 for i in range(N) if i % 10 == 1)  # i % 5 == 1: pay_bill
    assert listed(q.Filters(tag="great", intent="check_bill")).total == 0  # i % 5 == 0: no turns
    assert listed(q.Filters(tag="great", intent="greet")).total == 0  # not tagged
    # February in Rome (UTC+1): minutes 44580 to 84899 after 2026-01-01 00:00 UTC
    stage = listed(q.Filters(stage="self_care", date_from=date(2026, 2, 1),
                             date_to=date(2026, 2, 28), csat=2))
    # self_care with turns: i % 5 in (1, 2); csat 2: odd i with i % 5 == 1
    assert stage.total == sum(1 for i in range(44580, 84900) if i % 10 == 1)
    assert all(r["csat"] == 2 for r in stage.rows)
