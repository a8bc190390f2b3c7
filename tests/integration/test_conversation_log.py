"""The review console's conversation log against the real stack, on both profiles: Rasa's event
broker feeds it, the log worker builds it within seconds, masked; a rating reaches the record; a
handover's figures reach the record. Restarts: tests/integration/test_restarts.py."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from bot.analytics.models import Conversation, ConversationMessage
from bot.persistence.db import session_scope
from tests.integration.desk_client import Agent
from tests.integration.test_handover import _reset, wait_state

pytestmark = pytest.mark.integration


def record(sender: str, turns: int | None = None, timeout: float = 30,
           check=lambda c: True) -> Conversation:
    """The sender's latest conversation record, once the log holds `turns` customer messages."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        with session_scope() as db:
            c = db.execute(select(Conversation).where(Conversation.sender_id == sender)
                           .order_by(Conversation.session_start.desc())).scalars().first()
            if c is not None:
                c.messages, c.intents  # noqa: B018
                last = c
                if (turns is None or c.turns == turns) and check(c):
                    return c
        time.sleep(0.3)
    raise AssertionError(f"the log never reached {turns} turns for {sender}: "
                         f"{last and (last.turns, last.outcome, last.handover_state)}")


def customer_lines(sender: str) -> int:
    with session_scope() as db:
        return db.execute(select(func.count()).select_from(ConversationMessage)
                          .join(Conversation)
                          .where(Conversation.sender_id == sender,
                                 ConversationMessage.sender == "customer")).scalar()


def test_an_identified_conversation_reaches_the_log_masked(stack, sender, token):
    code = "C1000004"  # John Smith, English, two supplies
    stack.talk(sender, "hi", token(code))
    stack.talk(sender, "how much do I owe?", token(code))
    stack.talk(sender, "my email is john.smith@example.co.uk", token(code))
    c = record(sender, turns=3)
    assert (c.customer_code, c.channel, c.language) == (code, "web", "en")
    assert c.persona and c.outcome == "contained" and not c.ended
    assert {i.intent for i in c.intents} >= {"greet", "check_bill"}
    stages = {i.intent: i.stage for i in c.intents}
    assert stages["check_bill"] == "self_care" and stages["greet"] == "conversation"
    texts = " ".join(m.text for m in c.messages)
    assert "john.smith@example.co.uk" not in texts and "[EMAIL]" in texts
    assert "John" not in texts and "Smith" not in texts  # the bot greets him by name
    customer = [m for m in c.messages if m.sender == "customer"]
    assert customer[1].intent == "check_bill" and 0 < customer[1].confidence <= 1
    assert any(m.sender == "bot" for m in c.messages)
    assert any(m.sender == "action" for m in c.messages)


def test_a_rating_button_is_the_csat_not_a_comment(stack, sender):
    stack.talk(sender, "ciao")
    replies = stack.talk(sender, "arrivederci")
    assert any("da 1 a 5" in (m.get("text") or "") for m in replies), replies
    # the customer presses a rating button: its payload is the message's text
    replies = stack.talk(sender, '/give_feedback{"rating": "4"}')
    assert any("4/5" in (m.get("text") or "") for m in replies), replies
    c = record(sender, turns=3, check=lambda c: c.csat is not None)
    assert (c.csat, c.csat_comment) == (4, None)


def test_a_handover_is_the_outcome_with_its_reason_wait_and_handling_time(stack, sender):
    _reset()
    agent = Agent(stack.desk_url, "giulia")
    agent.presence("online")
    try:
        stack.talk(sender, "ciao")
        stack.talk(sender, "voglio parlare con un operatore")
        c = record(sender, check=lambda c: c.handed_over)
        assert (c.outcome, c.handover_reason, c.handover_state) == ("handover", "request_human",
                                                                    "queued")
        row = agent.wait_in_queue(sender)
        assert agent.post(f"/api/handovers/{row['id']}/claim").status_code == 200
        agent.post(f"/api/handovers/{row['id']}/messages", {"text": "Buongiorno, sono Giulia"})
        stack.talk(sender, "ho un dubbio sulla bolletta")
        assert agent.post(f"/api/handovers/{row['id']}/close").status_code == 200
        h = wait_state(sender, "closed")
        c = record(sender, check=lambda c: c.handover_state == "closed")
        assert c.handover_wait_seconds == h.wait_seconds is not None
        assert c.handover_handling_seconds == h.handling_seconds is not None
        lines = [(m.sender, m.handover) for m in c.messages if m.sender in ("agent", "customer")]
        assert ("agent", True) in lines and ("customer", True) in lines
        agent_line = next(m for m in c.messages if m.sender == "agent")
        assert agent_line.agent.startswith("Giulia")
        assert c.turns == 2  # what was said to the agent is not a turn of the bot's
    finally:
        agent.presence("offline")
        _reset()
