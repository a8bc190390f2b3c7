"""Every process of the stack stops and starts again during traffic, on both profiles, and
nothing is lost or done twice. One restart of each process serves all the checks (a Rasa server
takes about half a minute to load its model):
- the conversation log: restarts of the log worker, the desk, the Rasa server and the action
  server lose no turn and count none twice, and the log goes on while the desk is down;
- a handover: the conversation stays with the agent across restarts of the desk (while the
  customer waits in the queue) and of the Rasa server (while the agent has it), the bot silent
  throughout, and answers again once the agent closes;
- a WhatsApp message the platform delivers again after the restart is still processed once."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.desk_client import Agent, wait_log_caught_up
from tests.integration.test_conversation_log import customer_lines, record
from tests.integration.test_handover import _reset
from tests.integration.test_messaging import user_intents, wa_post, wa_sent, wa_text

pytestmark = pytest.mark.integration


def test_restarts_lose_nothing_and_count_nothing_twice(stack, sender, token, platform_api):
    # A WhatsApp message, delivered twice before the restarts
    wa_id = "39" + str(uuid.uuid4().int)[:10]
    message_id = f"wamid.{uuid.uuid4().hex}"
    for _ in range(2):
        assert wa_post(stack, wa_text(wa_id, "ciao", message_id)).status_code == 200
    assert len(wa_sent(platform_api, wa_id)) == 1 and user_intents(stack, wa_id) == ["greet"]

    # The log worker: restarted, then down while the customer goes on talking
    stack.talk(sender, "ciao")
    stack.talk(sender, "come posso pagare la bolletta?")
    record(sender, turns=2)
    stack.restart("worker")
    stack.talk(sender, "posso pagare con la carta?")
    stack.talk(sender, "grazie")
    record(sender, turns=4)
    stack.process("worker").terminate()
    stack.process("worker").wait(30)
    stack.talk(sender, "che tariffa ho?")
    stack.restart("worker")
    record(sender, turns=5)

    _reset()
    waiting, t = f"{sender}-agent", token("C1000003")
    try:
        # A customer waits for a person while the desk goes down; the log goes on meanwhile
        agent = Agent(stack.desk_url, "giulia")
        agent.presence("online")
        assert "in coda" in stack.say(waiting, "operatore", t)
        stack.process("desk").terminate()
        stack.process("desk").wait(30)
        stack.talk(sender, "ciao")
        record(sender, turns=6)
        assert stack.talk(waiting, "ciao?", t) == []
        stack.restart("desk")
        agent = Agent(stack.desk_url, "giulia")  # sessions are in the database: still signed in
        row = agent.wait_in_queue(waiting)
        assert agent.post(f"/api/handovers/{row['id']}/claim").status_code == 200
        assert agent.post(f"/api/handovers/{row['id']}/messages",
                          {"text": "Buongiorno, eccomi"}).status_code == 200

        # The Rasa server and the action server, while the agent has the conversation
        stack.restart("rasa")
        stack.restart("actions")

        assert stack.talk(waiting, "ci siete ancora?", t) == []
        assert stack.talk(waiting, "pronto?", t) == []
        assert agent.post(f"/api/handovers/{row['id']}/close").status_code == 200
        # the bot is back: it answers about the bills (a bill to pay, or none: "bollette")
        assert "bollett" in stack.say(waiting, "vorrei vedere la mia bolletta", t).lower()
    finally:
        _reset()  # nobody online, nobody waiting

    # The log after every restart: each turn once
    stack.talk(sender, "arrivederci")
    record(sender, turns=7)
    # the log worker reads on past this conversation (another customer's event, read after
    # every event of this one): still no double counting
    stack.talk(f"{sender}-later", "ciao")
    wait_log_caught_up()
    c = record(sender, turns=7)
    assert customer_lines(sender) == 7
    assert {i.intent: i.count for i in c.intents}["pay_bill"] == 2

    # The WhatsApp message delivered again after the restarts: still processed once
    assert wa_post(stack, wa_text(wa_id, "ciao", message_id)).status_code == 200
    assert len(wa_sent(platform_api, wa_id)) == 1 and user_intents(stack, wa_id) == ["greet"]
