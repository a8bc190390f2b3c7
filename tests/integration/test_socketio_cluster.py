"""Two Rasa server processes on the production profile (same model, PostgreSQL tracker store,
Redis lock store, socket.io through Redis): a message pushed through one process, as the desk
pushes an agent's reply, reaches a customer whose browser is connected to the other."""

from __future__ import annotations

import httpx
import pytest

from bot.launcher import Launcher, Service, free_port, rasa_command
from tests.integration.desk_client import Customer
from tests.stack import RASA_TOKEN

pytestmark = pytest.mark.integration


@pytest.fixture
def second_rasa(stack, model_path):
    """Process B: a second Rasa server with the environment of the stack's own (process A)."""
    port = free_port()
    second = Service("rasa-b", rasa_command(model_path, port), f"http://127.0.0.1:{port}/",
                     stack.var_dir / f"rasa-b-{port}.log")
    with Launcher(stack.env, [second]):
        yield f"http://127.0.0.1:{port}"


def push(rasa_url: str, conversation_id: str, text: str) -> None:
    """An agent's reply as the desk sends it: a bot event to the conversation's latest channel."""
    r = httpx.post(f"{rasa_url}/conversations/{conversation_id}/tracker/events",
                   params={"token": RASA_TOKEN, "output_channel": "latest",
                           "execute_side_effects": "true"},
                   json={"event": "bot", "text": text, "metadata": {"agent": "giulia"}},
                   timeout=30)
    r.raise_for_status()


@pytest.mark.parametrize("stack", ["production"], indirect=True)
def test_a_message_pushed_through_one_process_reaches_a_customer_on_the_other(
        stack, second_rasa):
    on_a = Customer(stack.rasa_url)
    on_b = Customer(second_rasa)
    try:
        assert "assistente virtuale" in on_a.say("ciao")
        assert "virtual assistant" in on_b.say("hello")
        push(second_rasa, on_a.session_id, "Buongiorno, sono Giulia (dal processo B).")
        on_a.wait_text("sono Giulia (dal processo B)")
        push(stack.rasa_url, on_b.session_id, "Hello, this is Giulia (from process A).")
        on_b.wait_text("this is Giulia (from process A)")
        # each customer got only their own conversation's messages
        assert not any("process A" in t for t in on_a.texts())
        assert not any("processo B" in t for t in on_b.texts())
    finally:
        on_a.close()
        on_b.close()
