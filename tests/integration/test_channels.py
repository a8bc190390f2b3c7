"""The socket.io channel (the web widget's) with the customer token in customData."""

from __future__ import annotations

import asyncio
import time

import pytest
import socketio

pytestmark = pytest.mark.integration


def test_socketio_conversation_with_customer_token(stack, token):
    async def main():
        client = socketio.AsyncClient()
        replies: list[dict] = []
        session: dict = {}

        @client.on("session_confirm")
        async def on_session(data):
            session["id"] = data if isinstance(data, str) else data.get("session_id")

        @client.on("bot_uttered")
        async def on_bot(data):
            replies.append(data)

        await client.connect(stack.rasa_url, socketio_path="/socket.io", transports=["websocket"])
        await client.emit("session_request", {"session_id": None})
        for _ in range(50):
            if session.get("id"):
                break
            await asyncio.sleep(0.1)
        await client.emit("user_uttered", {"message": "ciao", "session_id": session["id"],
                                           "customData": {"customer_token": token("C1000003")}})
        for _ in range(300):
            if replies:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)
        await client.disconnect()
        return replies

    replies = asyncio.run(main())
    text = " ".join(r.get("text", "") for r in replies)
    assert "Laura" in text


def test_a_flood_on_socketio_is_dropped_and_others_are_unaffected(stack):
    from tests.stack import RATE_LIMIT
    from tests.integration.desk_client import Customer

    flooder, other = Customer(stack.rasa_url), Customer(stack.rasa_url)
    try:
        for i in range(RATE_LIMIT + 10):
            flooder.say(f"ciao {i}", wait_for_reply=False)
        flooder.wait_for(lambda texts: len(texts) >= RATE_LIMIT, timeout=180)
        time.sleep(5)
        user_turns = [e for e in stack.tracker(flooder.session_id)["events"]
                      if e["event"] == "user"]
        assert len(user_turns) == RATE_LIMIT  # the rest never reached the bot
        assert other.say("ciao")  # another customer is answered as usual
    finally:
        flooder.close()
        other.close()
