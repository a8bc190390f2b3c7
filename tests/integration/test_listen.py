"""Listen's console routes on the real stack (both profiles): who may open them (strangers,
agents, no CSRF token), the topics of a seeded period over HTTP with their sizes and trend,
labelling a topic with an intent (exported as NLU YAML by the console's export) or as a missing
skill, bad input, and a real conversation the bot did not understand reaching Listen through
the conversation log."""

from __future__ import annotations

import time
import uuid
from datetime import date, datetime, timedelta, timezone

import httpx
import pytest
import yaml
from sqlalchemy import delete

from bot.analytics.models import Conversation, ConversationMessage
from bot.persistence.db import session_scope
from tests.integration.desk_client import Agent
from tests.integration.test_console import marker

pytestmark = pytest.mark.integration
# A week of its own, far from the other tests' conversations (they are all recent).
START, END = date(2025, 2, 3), date(2025, 2, 9)
NOW = datetime(2025, 2, 5, 10, 0, tzinfo=timezone.utc)
BEFORE = datetime(2025, 1, 29, 10, 0, tzinfo=timezone.utc)
PERIOD = f"from={START}&to={END}&language=it"


def seed(language_words: dict[str, list[tuple[str, str, datetime]]]) -> list[str]:
    """Conversations of one customer message each: {language: [(text, intent, at)]}; their
    sender ids."""
    senders = []
    with session_scope() as db:
        for language, lines in language_words.items():
            for text, intent, at in lines:
                sender = f"listen-{uuid.uuid4().hex[:10]}"
                conv = Conversation(sender_id=sender, session_start=at.timestamp(),
                                    channel="web", language=language, outcome="contained",
                                    ended=True, turns=1, fallbacks=int(intent == "nlu_fallback"),
                                    last_was_fallback=False, handed_over=False, reviewed=False,
                                    started_at=at, last_event_at=at, ended_at=at)
                conv.messages.append(ConversationMessage(
                    at=at, sender="customer", text=text, intent=intent, confidence=0.3,
                    fallback=intent == "nlu_fallback", handover=False))
                db.add(conv)
                senders.append(sender)
    return senders


def remove(senders: list[str]) -> None:
    with session_scope() as db:
        db.execute(delete(Conversation).where(Conversation.sender_id.in_(senders)))


@pytest.fixture
def week(stack):
    """Two Italian themes named by words of their own, an unrelated message, an English one."""
    solar, bonus = marker(), marker()
    lines = {"it": [(f"avete il {solar} per la casa?", "nlu_fallback", NOW),
                    (f"vorrei il {solar} sul tetto", "nlu_fallback", NOW),
                    (f"quanto costa il {solar}", "out_of_scope", NOW),
                    (f"il {solar} lo vendete?", "nlu_fallback", NOW),
                    (f"info sul {solar}", "nlu_fallback", BEFORE),
                    (f"come richiedo il {bonus} sociale?", "nlu_fallback", NOW),
                    (f"il {bonus} sociale spetta a me?", "out_of_scope", NOW),
                    (f"non mi avete dato il {bonus} sociale", "nlu_fallback", NOW),
                    ("che tempo fa domani", "nlu_fallback", NOW)],
             "en": [(f"{solar} panels please", "nlu_fallback", NOW)] * 3}
    senders = seed(lines)
    yield {"solar": solar, "bonus": bonus}
    remove(senders)


def topic_with(topics: list[dict], word: str) -> dict:
    [topic] = [t for t in topics if all(word in e["text"] for e in t["examples"])]
    return topic


def test_listen_needs_a_signed_in_cx_lead(stack):
    r = httpx.get(f"{stack.desk_url}/console/api/topics?{PERIOD}")
    assert (r.status_code, r.json()) == (401, {"error": "login required"})
    page = httpx.get(f"{stack.desk_url}/console/listen", follow_redirects=False)
    assert page.status_code == 302 and page.headers["location"] == "/login"
    r = httpx.post(f"{stack.desk_url}/console/api/topics/0123456789ab/label",
                   json={"label": "missing skill"})
    assert r.status_code == 401
    agent = Agent(stack.desk_url, "giulia")
    assert agent.get(f"/console/api/topics?{PERIOD}").status_code == 403
    assert agent.get("/console/listen").status_code == 403
    assert agent.post("/console/api/topics/0123456789ab/label",
                      {"label": "missing skill"}).status_code == 403
    lead = Agent(stack.desk_url, "lucia")
    no_csrf = httpx.post(f"{stack.desk_url}/console/api/topics/0123456789ab/label",
                         json={"label": "missing skill"}, headers=lead.headers)
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.json()["error"]
    listen_page = lead.get("/console/listen")
    assert listen_page.status_code == 200 and 'id="nav-listen"' in listen_page.text
    assert 'href="/console/listen"' in lead.get("/console").text  # in the console's navigation


def test_topics_and_labels_over_http(stack, week):
    lead = Agent(stack.desk_url, "lucia")
    r = lead.get(f"/console/api/topics?{PERIOD}")
    assert r.status_code == 200, r.text
    data = r.json()
    assert (data["from"], data["to"], data["language"]) == (str(START), str(END), "it")
    assert data["previous"] == {"from": "2025-01-27", "to": "2025-02-02"}
    assert (data["messages"], data["previous_messages"]) == (8, 1)
    solar, bonus = topic_with(data["topics"], week["solar"]), topic_with(data["topics"],
                                                                         week["bonus"])
    assert (solar["size"], solar["previous_size"], solar["trend"]) == (4, 1, "up")
    assert (bonus["size"], bonus["previous_size"], bonus["trend"]) == (3, 0, "new")
    assert [t["id"] for t in data["topics"]] == [solar["id"], bonus["id"]]
    assert data["other"]["size"] == 1
    assert "check_bill" in data["intents"] and data["missing_skill"] == "missing skill"
    conversation = solar["examples"][0]["conversation_id"]
    assert lead.get(f"/console/api/conversations/{conversation}").status_code == 200
    en = lead.get(f"/console/api/topics?from={START}&to={END}&language=en").json()
    assert [t["size"] for t in en["topics"]] == [3]

    # label one topic with an intent: the console's NLU export holds its messages
    done = lead.post(f"/console/api/topics/{bonus['id']}/label",
                     {"from": str(START), "to": str(END), "language": "it",
                      "label": "contract_info"})
    assert done.status_code == 200, done.text
    assert done.json() == {"topic": bonus["id"], "label": "contract_info", "messages": 3}
    exported = yaml.safe_load(lead.get("/console/api/annotations.yml?language=it").text)
    [block] = [b for b in exported["nlu"] if b["intent"] == "contract_info"]
    assert {f"come richiedo il {week['bonus']} sociale?", f"il {week['bonus']} sociale spetta a "
            f"me?", f"non mi avete dato il {week['bonus']} sociale"} <= {
        line[2:] for line in block["examples"].splitlines()}

    # the other as a missing skill
    marked = lead.post(f"/console/api/topics/{solar['id']}/label",
                       {"from": str(START), "to": str(END), "language": "it",
                        "label": "missing skill"})
    assert marked.status_code == 200 and marked.json()["messages"] == 4
    again = lead.get(f"/console/api/topics?{PERIOD}").json()
    labelled = {t["id"]: (t["label"], t["labelled"]) for t in again["topics"]}
    assert labelled == {solar["id"]: ("missing skill", 4), bonus["id"]: ("contract_info", 3)}

    # bad input
    body = {"from": str(START), "to": str(END), "language": "it"}
    assert lead.post(f"/console/api/topics/{solar['id']}/label",
                     {**body, "label": "sell_panels"}).status_code == 400
    assert lead.post(f"/console/api/topics/{solar['id']}/label", body).status_code == 400
    gone = lead.post("/console/api/topics/0123456789ab/label", {**body, "label": "greet"})
    assert gone.status_code == 404 and "reload" in gone.json()["error"]
    for query in (f"from={END}&to={START}", "language=fr", "from=2025-02-30",
                  "from=2020-01-01&to=2025-01-01"):
        bad = lead.get(f"/console/api/topics?{query}")
        assert bad.status_code == 400 and bad.json()["error"], query


def test_a_message_the_bot_did_not_understand_reaches_listen(stack):
    """Over the real stack: the customer writes words no one knows, the log records what the
    bot made of them, and once a CX lead tags the conversation `misunderstood` Listen groups
    them (whatever the intent, unless it was a greeting or the like)."""
    word = marker()
    sender = f"listen-live-{uuid.uuid4().hex[:8]}"
    # requests (questions about a thing no one knows), never a greeting, a thank-you or data
    # given when asked, whatever the model makes of the unknown word: Listen leaves those out
    texts = [f"quanto costa il {word} {word}?", f"vendete anche il {word} {word}?",
             f"come posso avere il {word} {word} a casa?"]
    for text in texts:
        stack.talk(sender, text)
    lead = Agent(stack.desk_url, "lucia")
    deadline = time.monotonic() + 30
    while True:
        rows = lead.get(f"/console/api/conversations?q={word}").json()["rows"]
        if rows and rows[0]["turns"] >= 3:
            break
        assert time.monotonic() < deadline, f"not in the log: {rows}"
        time.sleep(0.5)
    assert lead.post(f"/console/api/conversations/{rows[0]['id']}/tags",
                     {"tag": "misunderstood"}).status_code == 200
    today = datetime.now(timezone.utc).astimezone().date()
    period = (f"from={today - timedelta(days=1)}&to={today + timedelta(days=1)}"
              f"&language={rows[0]['language']}")  # the language the bot detected
    topic = topic_with(lead.get(f"/console/api/topics?{period}").json()["topics"], word)
    assert topic["size"] == 3 and {e["text"] for e in topic["examples"]} == set(texts)
