"""The socket.io channel (the web widget's) with the customer token in customData."""

from __future__ import annotations

import time

import pytest

from tests.integration.desk_client import Customer, tracker_events

pytestmark = pytest.mark.integration


def test_socketio_conversation_with_customer_token(stack, token):
    customer = Customer(stack.rasa_url, {"customer_token": token("C1000003")})
    try:
        assert "Laura" in customer.say("ciao")  # the whole turn, once Rasa has handled it
    finally:
        customer.close()


def test_a_flood_on_socketio_is_dropped_and_others_are_unaffected(stack):
    """Every message of the flood is either accepted (it reaches the tracker) or refused (the
    limiter logs the drop): once all are accounted for, exactly RATE_LIMIT were accepted,
    however slowly the machine handles them. The flood is emitted in well under the limiter's
    60-second window."""
    from bot.ratelimit import mask
    from tests.stack import RATE_LIMIT

    flood = RATE_LIMIT + 10
    rasa_log = stack.launcher["rasa"].log
    flooder, other = Customer(stack.rasa_url), Customer(stack.rasa_url)
    dropped = f"rate limit: dropping a message on socketio from {mask(flooder.session_id)}"
    try:
        offset = rasa_log.stat().st_size
        for i in range(flood):
            flooder.say(f"ciao {i}", wait_for_reply=False)

        def counts() -> tuple[int, int]:
            accepted = sum(e["event"] == "user"
                           for e in tracker_events(stack.rasa_url, flooder.session_id))
            with open(rasa_log, "rb") as log:
                log.seek(offset)
                refused = log.read().decode(errors="replace").count(dropped)
            return accepted, refused

        deadline = time.monotonic() + 180
        accepted, refused = counts()
        while accepted + refused < flood:
            assert time.monotonic() < deadline, (accepted, refused)
            time.sleep(0.2)
            accepted, refused = counts()
        assert (accepted, refused) == (RATE_LIMIT, flood - RATE_LIMIT)
        assert other.say("ciao")  # another customer is answered as usual
    finally:
        flooder.close()
        other.close()
