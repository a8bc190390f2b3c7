"""Listen (bot.analytics.topics, bot.analytics.topic_labels) on a seeded set of Italian and
English messages, on SQLite and PostgreSQL: the themes come out as topics with their sizes and
trend against the previous period; what is not listened to stays out; noise goes to "other";
labelling a topic with an intent creates the annotations the NLU export writes; marking it as a
missing skill; labels survive recomputation.

Period: Mon 2026-03-23 .. Sun 2026-03-29 (Europe/Rome); previous period 2026-03-16 .. 03-22.

Italian, in the period:
- solar ("fotovoltaico"): 6 fallbacks (one masked by the log); 2 in the previous period: up +4;
- car charging ("colonnina di ricarica"): 4 out_of_scope; 4 in the previous period: same;
- social bonus ("bonus sociale"): 3, two of them misclassified (check_bill) in a conversation a
  CX lead tagged `misunderstood` (its greeting and its thanks are left out), one fallback; none
  before: new;
- 4 unrelated fallbacks (noise): "other".
Not listened to: an understood message about solar (check_bill, untagged conversation), a
fallback said to an agent during a handover, a fallback the day after the period, and anything
in English when Italian is asked for. English: solar panels (3), an EV charger (3), 1 noise.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader
from sqlalchemy import func, select

from bot.analytics import annotations, grouping
from bot.analytics.models import (
    MISSING_SKILL,
    Conversation,
    ConversationMessage,
    ConversationTag,
    MessageAnnotation,
    MissingSkillMark,
)
from bot.analytics.queries.conversation import NotFound
from bot.analytics.topic_labels import label_topic
from bot.analytics.topics import report, trend
from bot.persistence.db import session_scope

START, END = date(2026, 3, 23), date(2026, 3, 29)
NOW = datetime(2026, 3, 25, 10, 0, tzinfo=timezone.utc)
BEFORE = datetime(2026, 3, 18, 10, 0, tzinfo=timezone.utc)
AFTER = datetime(2026, 3, 29, 22, 30, tzinfo=timezone.utc)  # 00:30 on the 30th in Rome
FB, OOS = "nlu_fallback", "out_of_scope"

SOLAR = ["avete offerte per il fotovoltaico?", "vorrei installare il fotovoltaico sul tetto",
         "quanto costa il fotovoltaico", "il fotovoltaico lo vendete?",
         "sono [NAME], mi interessa il fotovoltaico", "preventivo fotovoltaico per casa"]
SOLAR_BEFORE = ["fate il fotovoltaico?", "info sul fotovoltaico"]
CHARGING = ["avete la colonnina di ricarica per l'auto?", "colonnina di ricarica in garage",
            "installate colonnine di ricarica?", "prezzo della colonnina di ricarica"]
CHARGING_BEFORE = ["una colonnina di ricarica?", "colonnine di ricarica per auto",
                   "vorrei la colonnina di ricarica", "colonnina di ricarica elettrica"]
BONUS_TAGGED = ["come richiedo il bonus sociale?", "non mi avete applicato il bonus sociale"]
BONUS_FALLBACK = "il bonus sociale spetta anche a me?"
NOISE = ["che tempo fa domani a Milano", "raccontami una barzelletta", "chi ha vinto la partita",
         "asdfgh qwerty"]
EN_SOLAR = ["do you sell solar panels?", "solar panels on my roof", "price of solar panels"]
EN_CHARGER = ["ev charger at home", "can you install an ev charger?", "ev charger price"]


def _conversation(db, sender: str, language: str, at: datetime, lines, tags=()) -> int:
    """One conversation of customer lines (text, intent) or (text, intent, said_to_an_agent)."""
    conv = Conversation(sender_id=sender, session_start=at.timestamp(), channel="web",
                        language=language, outcome="contained", ended=True, turns=len(lines),
                        fallbacks=sum(1 for line in lines if line[1] == FB), reviewed=False,
                        last_was_fallback=False, handed_over=False, started_at=at,
                        last_event_at=at, ended_at=at + timedelta(minutes=5))
    for i, (text, intent, *agent) in enumerate(lines):
        conv.messages.append(ConversationMessage(
            at=at + timedelta(seconds=10 * i), sender="customer", text=text, intent=intent,
            confidence=0.9, fallback=intent == FB, handover=bool(agent and agent[0])))
    conv.tags = [ConversationTag(tag=tag, at=at) for tag in tags]
    db.add(conv)
    db.flush()
    return conv.id


@pytest.fixture
def seeded(database):
    with session_scope() as db:
        n = iter(range(1000))

        def one(text, intent, at, language="it", **kw):
            return _conversation(db, f"s{next(n)}", language, at, [(text, intent)], **kw)

        for i, text in enumerate(SOLAR):
            one(text, FB, NOW + timedelta(hours=i))
        for text in SOLAR_BEFORE:
            one(text, FB, BEFORE)
        for text in CHARGING:
            one(text, OOS, NOW)
        for text in CHARGING_BEFORE:
            one(text, OOS, BEFORE)
        tagged = _conversation(db, "tagged", "it", NOW, [
            ("ciao", "greet"), (BONUS_TAGGED[0], "check_bill"), (BONUS_TAGGED[1], "check_bill"),
            ("grazie", "thank_you")], tags=["misunderstood"])
        one(BONUS_FALLBACK, FB, NOW)
        for text in NOISE:
            one(text, FB, NOW)
        # not listened to
        one("il fotovoltaico è in bolletta?", "check_bill", NOW)
        _conversation(db, "agent", "it", NOW, [("parlo con lei del fotovoltaico", FB, True)])
        one("fotovoltaico dopo il periodo", FB, AFTER)
        for text in EN_SOLAR + EN_CHARGER + ["what is the meaning of life"]:
            one(text, FB, NOW, language="en")
    return {"tagged": tagged}


def _report(language="it"):
    with session_scope() as db:
        return report(db, START, END, language)


def _by_theme(result, word):
    [topic] = [t for t in result["topics"]
               if all(word in e["text"].lower() for e in t["examples"])]
    return topic


def _texts(topic_or_other):
    return {e["text"] for e in topic_or_other["examples"]}


def test_the_themes_are_topics_with_their_sizes_and_trend(seeded):
    r = _report()
    assert (r["messages"], r["previous_messages"]) == (6 + 4 + 3 + 4, 2 + 4)
    assert r["previous"] == {"from": "2026-03-16", "to": "2026-03-22"}
    sizes = [(t["size"], t["previous_size"], t["change"], t["trend"]) for t in r["topics"]]
    assert sizes == [(6, 2, 4, "up"), (4, 4, 0, "same"), (3, 0, 3, "new")]  # largest first
    solar, charging, bonus = r["topics"]
    assert solar == _by_theme(r, "fotovoltaico")
    assert charging == _by_theme(r, "colonnin")
    assert bonus == _by_theme(r, "bonus sociale")
    assert _texts(bonus) == {*BONUS_TAGGED, BONUS_FALLBACK}  # not "ciao", not "grazie"
    assert len(solar["examples"]) == 5 and "sono [NAME], mi interessa il fotovoltaico" in (
        [m["text"] for m in _examples_of_all(solar)])
    assert solar["name"] in SOLAR and "fotovoltaico" in solar["name"]
    assert {e["conversation_id"] for e in bonus["examples"]} >= {seeded["tagged"]}
    assert r["other"]["size"] == 4 and _texts(r["other"]) == set(NOISE)
    assert all(t["label"] is None and t["labelled"] == 0 for t in r["topics"])


def _examples_of_all(topic):
    """Every message of the topic, read back through the same recomputation."""
    from bot.analytics.topics import topic_messages

    with session_scope() as db:
        return [m.example() for m in topic_messages(db, START, END, "it", topic["id"])]


def test_per_language_and_only_what_is_listened_to(seeded):
    it = _report()
    everything = " ".join(e["text"] for t in it["topics"] for e in _examples_of_all(t))
    for left_out in ("in bolletta", "parlo con lei", "dopo il periodo", "solar", "ciao"):
        assert left_out not in everything
    en = _report("en")
    assert en["messages"] == 7
    assert sorted((t["size"], t["trend"]) for t in en["topics"]) == [(3, "new"), (3, "new")]
    assert {frozenset(_texts(t)) for t in en["topics"]} == {frozenset(EN_SOLAR),
                                                          frozenset(EN_CHARGER)}
    assert en["other"]["size"] == 1


def test_a_topic_keeps_its_id_when_recomputed(seeded):
    first, second = _report(), _report()
    assert [t["id"] for t in first["topics"]] == [t["id"] for t in second["topics"]]
    assert len({t["id"] for t in first["topics"]}) == 3


def test_labelling_a_topic_with_an_intent_creates_annotations_exported_as_nlu_yaml(seeded):
    bonus = _by_theme(_report(), "bonus sociale")
    with session_scope() as db:
        done = label_topic(db, START, END, "it", bonus["id"], "contract_info", user_id=None)
    assert done == {"topic": bonus["id"], "label": "contract_info", "messages": 3}
    with session_scope() as db:
        rows = db.execute(select(ConversationMessage.text, MessageAnnotation.intent,
                                 MessageAnnotation.language)
                          .join(MessageAnnotation,
                                MessageAnnotation.message_id == ConversationMessage.id)).all()
    assert sorted(rows) == sorted((t, "contract_info", "it")
                                  for t in [*BONUS_TAGGED, BONUS_FALLBACK])
    data = RasaYAMLReader().reads(annotations.export_yaml("it"))
    assert sorted((m.get("intent"), m.get("text")) for m in data.training_examples) == sorted(
        ("contract_info", t) for t in [*BONUS_TAGGED, BONUS_FALLBACK])
    again = _by_theme(_report(), "bonus sociale")  # recomputed: the label is still there
    assert (again["id"], again["label"], again["labelled"]) == (bonus["id"], "contract_info", 3)


def test_missing_skill_marks_the_messages_and_replaces_annotations(seeded):
    solar = _by_theme(_report(), "fotovoltaico")
    with session_scope() as db:
        label_topic(db, START, END, "it", solar["id"], "activate_ebill")
    with session_scope() as db:
        assert label_topic(db, START, END, "it", solar["id"], MISSING_SKILL)["messages"] == 6
    with session_scope() as db:
        assert db.scalar(select(func.count()).select_from(MissingSkillMark)) == 6
        assert db.scalar(select(func.count()).select_from(MessageAnnotation)) == 0
    r = _report()
    solar = _by_theme(r, "fotovoltaico")
    assert (solar["label"], solar["labelled"]) == (MISSING_SKILL, 6)
    assert solar["labels"] == [{"label": MISSING_SKILL, "messages": 6}]
    assert annotations.collect("it") == {}  # a missing skill is not training data
    with session_scope() as db:  # marking twice adds nothing; clearing removes the marks
        label_topic(db, START, END, "it", solar["id"], MISSING_SKILL)
        assert db.scalar(select(func.count()).select_from(MissingSkillMark)) == 6
        label_topic(db, START, END, "it", solar["id"], None)
        assert db.scalar(select(func.count()).select_from(MissingSkillMark)) == 0
    assert _by_theme(_report(), "fotovoltaico")["label"] is None


def test_bad_labels_and_unknown_topics_are_refused(seeded):
    solar = _by_theme(_report(), "fotovoltaico")
    with session_scope() as db:
        with pytest.raises(ValueError, match="label: an intent of the domain"):
            label_topic(db, START, END, "it", solar["id"], "sell_solar_panels")
        with pytest.raises(NotFound, match="reload"):
            label_topic(db, START, END, "it", "0123456789ab", "check_bill")
        with pytest.raises(NotFound):  # the same topic does not exist in English
            label_topic(db, START, END, "en", solar["id"], "check_bill")
        with pytest.raises(ValueError, match="language"):
            report(db, START, END, "fr")
        with pytest.raises(ValueError, match="ends before it starts"):
            report(db, END, START, "it")
        assert db.scalar(select(func.count()).select_from(MessageAnnotation)) == 0


def test_a_new_message_of_a_labelled_topic_arrives_unlabelled(seeded):
    charging = _by_theme(_report(), "colonnin")
    with session_scope() as db:
        label_topic(db, START, END, "it", charging["id"], MISSING_SKILL)
        _conversation(db, "late", "it", NOW + timedelta(days=1),
                      [("colonnina di ricarica condominiale", OOS)])
    after = _by_theme(_report(), "colonnin")
    assert (after["size"], after["labelled"], after["label"]) == (5, 4, MISSING_SKILL)


def test_erasing_a_conversation_removes_its_marks(seeded):
    solar = _by_theme(_report(), "fotovoltaico")
    with session_scope() as db:
        label_topic(db, START, END, "it", solar["id"], MISSING_SKILL)
    from bot.analytics.lifecycle import _delete_conversations

    with session_scope() as db:
        _delete_conversations(db, Conversation.language == "it")
    with session_scope() as db:
        assert db.scalar(select(func.count()).select_from(MissingSkillMark)) == 0


def test_trend_words():
    assert [trend(3, 0), trend(5, 2), trend(2, 5), trend(4, 4)] == ["new", "up", "down", "same"]


def test_grouping_is_deterministic_and_leaves_wordless_texts_alone():
    texts = ["bonus sociale?", "il bonus sociale", "123 456", "", "bonus sociale gas", "!!!"]
    a, b = grouping.group_texts(texts), grouping.group_texts(list(texts))
    assert a.labels.tolist() == b.labels.tolist()
    assert [a.labels[i] for i in (2, 3, 5)] == [grouping.NO_GROUP] * 3
    assert len({a.labels[i] for i in (0, 1, 4)}) == 1
    assert grouping.normalise("Sono [NAME], 3 BOLLETTE") == "sono , bollette"
    assert grouping.group_texts([]).groups == 0
    same = grouping.group_texts(["pannelli solari?", "Pannelli  solari?", "!!!"])
    assert same.labels.tolist() == [0, 0, grouping.NO_GROUP]  # one distinct text is a group


def test_a_label_never_reaches_messages_the_lead_was_not_shown(seeded):
    """A new message joins a topic after the page showed it: the topic the CX lead saw is gone
    (its id named its messages), and the label is refused until the page is reloaded."""
    shown = _by_theme(_report(), "colonnin")
    with session_scope() as db:
        _conversation(db, "later", "it", NOW + timedelta(days=1),
                      [("colonnina di ricarica condominiale", OOS)])
    with session_scope() as db:
        with pytest.raises(NotFound, match="reload"):
            label_topic(db, START, END, "it", shown["id"], MISSING_SKILL)
        assert db.scalar(select(func.count()).select_from(MissingSkillMark)) == 0
    now = _by_theme(_report(), "colonnin")
    assert now["id"] != shown["id"] and now["size"] == shown["size"] + 1


def test_annotating_one_message_of_a_missing_skill_topic_gives_it_one_verdict(seeded):
    """The conversation page's annotation of a message marked as a missing skill replaces the
    mark: the message is training data or a missing skill, never both."""
    from bot.analytics.queries.curation import annotate

    solar = _by_theme(_report(), "fotovolt")
    with session_scope() as db:
        label_topic(db, START, END, "it", solar["id"], MISSING_SKILL)
        message = db.execute(select(MissingSkillMark.message_id)).scalars().first()
        conversation = db.get(ConversationMessage, message).conversation_id
        annotate(db, conversation, message, "check_bill")
        marked = set(db.execute(select(MissingSkillMark.message_id)).scalars())
        annotated = set(db.execute(select(MessageAnnotation.message_id)).scalars())
    assert message not in marked and annotated == {message} and len(marked) == 5
