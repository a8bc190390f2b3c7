"""The audit's attacks, performed against the real stack (Rasa server, action server, desk) on
both profiles. Each test does what the attacker did and checks that it no longer works."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
import socketio

from bot.crm.card import read_identity_card
from bot.crm.service import customer_for_identity, link_identity
from tests.stack import RASA_TOKEN, TOKEN_SECRET

pytestmark = pytest.mark.integration


def listening_addresses(port: int) -> set[str]:
    """The local addresses a TCP port is listening on (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in fh.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, port_hex = local.rsplit(":", 1)
                if state == "0A" and int(port_hex, 16) == port:
                    found.add(address)
    return found


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}


def port_of(url: str) -> int:
    from urllib.parse import urlparse

    return urlparse(url).port


def private_facts(code: str) -> list[str]:
    card = read_identity_card(code)
    facts = [card.last_name, *(s.supply_id for s in card.supplies),
             *(b.number for b in card.bills)]
    return [f for f in facts if f]


# --- 1. the action server ------------------------------------------------------------------

def attack_payload(action: str, code: str, **slots) -> dict:
    return {"next_action": action, "sender_id": "attacker", "version": "3.6.21",
            "tracker": {"sender_id": "attacker", "slots": {"verified": True,
                                                           "customer_code": code, **slots},
                        "latest_message": {"intent": {"name": "check_bill"}, "entities": [],
                                           "text": "x"},
                        "events": [], "paused": False, "latest_input_channel": "rest",
                        "active_loop": {}, "latest_action_name": "action_listen"},
            "domain": {}}


def test_the_action_server_listens_on_loopback_only(stack):
    addresses = listening_addresses(port_of(stack.env["ACTION_SERVER_URL"]))
    assert addresses and addresses <= LOOPBACK, addresses


def test_the_action_server_refuses_calls_without_its_token(stack):
    url = stack.env["ACTION_SERVER_URL"]
    before = read_identity_card("C1000002").email
    for headers in ({}, {"Authorization": "Bearer dev-only-rasa-token"},
                    {"Authorization": f"Bearer {RASA_TOKEN}"},  # another secret
                    {"Authorization": f"Basic {stack.env['ACTION_SERVER_TOKEN']}"}):
        r = httpx.post(url, json=attack_payload("action_check_bill", "C1000002"),
                       headers=headers, timeout=30)
        assert r.status_code == 401, (headers, r.text)
        for fact in private_facts("C1000002"):
            assert fact not in r.text
        r = httpx.post(url, headers=headers, timeout=30, json=attack_payload(
            "action_contact_submit", "C1000002", new_contact="email:attacker@evil.example",
            contact_otp="confirmed"))
        assert r.status_code == 401
    assert read_identity_card("C1000002").email == before
    base = url.rsplit("/", 1)[0]
    assert httpx.get(f"{base}/actions", timeout=10).status_code == 401
    health = httpx.get(f"{base}/health", timeout=10)
    assert health.status_code == 200 and health.json() == {"status": "ok"}


def test_the_action_server_answers_the_rasa_server_with_its_token(stack, sender):
    """The call Rasa makes (a real tracker and domain) works with the shared secret: the token
    is the barrier (and Rasa sends it: every conversation test goes through it)."""
    stack.say(sender, "ciao")
    tracker = stack.tracker(sender)
    domain = httpx.get(f"{stack.rasa_url}/domain", params={"token": RASA_TOKEN}, timeout=30,
                       headers={"Accept": "application/json"}).json()
    call = {"next_action": "action_greet", "sender_id": sender, "tracker": tracker,
            "domain": domain, "version": "3.6.21"}
    url = stack.env["ACTION_SERVER_URL"]
    assert httpx.post(url, json=call, timeout=30).status_code == 401
    r = httpx.post(url, json=call, timeout=30,
                   headers={"Authorization": f"Bearer {stack.env['ACTION_SERVER_TOKEN']}"})
    assert r.status_code == 200, r.text
    assert r.json()["responses"]


def test_an_action_server_error_echoes_nothing(stack):
    url = stack.env["ACTION_SERVER_URL"]
    r = httpx.post(url, content=b'{"next_action": "action_check_bill", "tracker": 7, '
                                b'"secret": "maria@example.it"}', timeout=30,
                   headers={"Authorization": f"Bearer {stack.env['ACTION_SERVER_TOKEN']}",
                            "content-type": "application/json"})
    assert r.status_code >= 400
    assert "maria@example.it" not in r.text and "request_body" not in r.text


# --- 2. a client-chosen channel ------------------------------------------------------------

def test_rest_cannot_pose_as_a_linked_whatsapp_number(stack):
    """Neither by naming the channel in the body nor by using the number as its sender id."""
    number = "39" + str(uuid.uuid4().int)[:10]
    link_identity("C1000002", "whatsapp", number)
    assert customer_for_identity("whatsapp", number) == "C1000002"
    for sender in (number, f"+{number}", f"whatsapp:+{number}"):
        body = {"sender": sender, "message": "quanto devo pagare?", "input_channel": "whatsapp"}
        r = httpx.post(f"{stack.rasa_url}/webhooks/rest/webhook", json=body, timeout=60)
        assert r.status_code == 400, r.text  # another channel's sender id
        for fact in private_facts("C1000002") + ["Giuseppe"]:
            assert fact not in r.text
    assert not [e for e in stack.tracker(number)["events"] if e["event"] == "user"]
    # an ordinary REST sender naming another channel: the channel is still REST
    sender = f"web-{uuid.uuid4().hex[:8]}"
    body = {"sender": sender, "message": "quanto devo pagare?", "input_channel": "whatsapp"}
    r = httpx.post(f"{stack.rasa_url}/webhooks/rest/webhook", json=body, timeout=60)
    assert r.status_code == 200 and "codice cliente" in r.text
    assert stack.tracker(sender)["latest_input_channel"] == "rest"


def test_rest_cannot_write_in_a_web_widget_conversation(stack):
    from bot import web_session

    conversation = web_session.conversation_of(web_session.issue())
    r = httpx.post(f"{stack.rasa_url}/webhooks/rest/webhook", timeout=30,
                   json={"sender": conversation, "message": "quanto devo pagare?"})
    assert r.status_code == 400


# --- 3. the Rasa HTTP API ------------------------------------------------------------------

def test_the_rasa_server_listens_on_loopback_only(stack):
    addresses = listening_addresses(port_of(stack.rasa_url))
    assert addresses and addresses <= LOOPBACK, addresses


def test_the_published_default_token_opens_nothing(stack, sender):
    stack.say(sender, "ciao")
    for token in ("dev-only-rasa-token", "integration-rasa-token", ""):
        r = httpx.get(f"{stack.rasa_url}/conversations/{sender}/tracker",
                      params={"token": token}, timeout=30)
        assert r.status_code == 401, token
        r = httpx.post(f"{stack.rasa_url}/conversations/{sender}/tracker/events",
                       params={"token": token}, timeout=30,
                       json=[{"event": "slot", "name": "verified", "value": True},
                             {"event": "slot", "name": "customer_code", "value": "C1000002"}])
        assert r.status_code == 401
    slots = stack.tracker(sender)["slots"]
    assert slots.get("customer_code") is None and slots.get("verified") is not True


def test_cors_only_for_the_site(stack):
    evil = httpx.options(f"{stack.rasa_url}/conversations/x/tracker", timeout=10,
                         headers={"Origin": "https://evil.example",
                                  "Access-Control-Request-Method": "GET"})
    assert evil.headers.get("access-control-allow-origin") not in ("https://evil.example", "*")
    site = httpx.options(f"{stack.rasa_url}/conversations/x/tracker", timeout=10,
                         headers={"Origin": stack.site_url,
                                  "Access-Control-Request-Method": "GET"})
    assert site.headers.get("access-control-allow-origin") == stack.site_url


# --- 5. identity bound to what cannot be replayed ------------------------------------------

def test_a_token_must_come_with_every_message(stack, sender, token):
    assert "Maria" in stack.say(sender, "ciao", token("C1000001"))
    reply = stack.say(sender, "quanto devo pagare?")  # same sender id, no token
    assert "codice cliente" in reply
    for fact in private_facts("C1000001"):
        assert fact not in reply


def test_raw_customer_tokens_are_not_stored(stack, sender, token):
    t = token("C1000001")
    stack.say(sender, "ciao", t)
    events = json.dumps(stack.tracker(sender)["events"])
    assert t not in events and t.split(".")[1] not in events
    from sqlalchemy import create_engine, text

    engine = create_engine(stack.env.get("EVENTS_DATABASE_URL") or _events_url(stack))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT data FROM events WHERE sender_id = :s"),
                            {"s": sender}).scalars().all()
    engine.dispose()
    assert rows and not any(t.split(".")[1] in row for row in rows)


def _events_url(stack) -> str:
    if stack.profile == "embedded":
        return f"sqlite:///{stack.var_dir / 'rasa-events.db'}"
    return f"postgresql://postgres@127.0.0.1:5432/{stack.env['RASA_EVENTS_DB']}"


async def _socket(url: str, session: str | None, received: list, confirmed: list):
    client = socketio.AsyncClient()
    got = asyncio.Event()

    @client.on("session_confirm")
    async def on_session(data):
        confirmed.append(data)
        got.set()

    @client.on("bot_uttered")
    async def on_bot(data):
        received.append(data)

    await client.connect(url, socketio_path="/socket.io", transports=["websocket"])
    await client.emit("session_request", {"session_id": session})
    await asyncio.wait_for(got.wait(), 20)
    return client


def test_another_client_cannot_join_a_web_conversation(stack, token):
    async def scenario():
        mine, theirs = [], []
        confirmed_a, confirmed_b = [], []
        a = await _socket(stack.rasa_url, None, mine, confirmed_a)
        session = confirmed_a[0]
        conversation = session.split(".")[0]
        # the attacker knows the conversation id (agents see it) and asks to join it, or
        # forges a signature
        b = await _socket(stack.rasa_url, conversation, theirs, confirmed_b)
        b2 = await _socket(stack.rasa_url, conversation + ".0000", theirs, confirmed_b)
        assert all(c.split(".")[0] != conversation for c in confirmed_b)
        # the attacker writes naming the customer's conversation: ignored
        await b.emit("user_uttered", {"message": "quanto devo pagare?",
                                      "session_id": session})
        await b.emit("user_uttered", {"message": "quanto devo pagare?",
                                      "session_id": conversation})
        # the customer signs in and asks: only the customer's browser gets the answer
        await a.emit("user_uttered", {"message": "quanto devo pagare?", "session_id": session,
                                      "customData": {"customer_token": token("C1000001")}})
        for _ in range(600):
            if any("Maria" in m.get("text", "") or "€" in m.get("text", "") for m in mine):
                break
            await asyncio.sleep(0.1)
        for client in (a, b, b2):
            await client.disconnect()
        return mine, theirs, conversation

    mine, theirs, conversation = asyncio.run(scenario())
    assert mine, "the customer got no reply"
    assert not theirs, theirs
    users = [e for e in stack.tracker(conversation)["events"] if e["event"] == "user"]
    assert len(users) == 1  # only the customer's own message reached the conversation


def test_a_contact_change_needs_a_code_sent_to_the_current_contact(stack, sender, token):
    t = token("C1000004")
    before = read_identity_card("C1000004")
    stack.say(sender, "I want to change my email address", t)
    reply = stack.say(sender, "attacker@evil.example", t)
    assert read_identity_card("C1000004").email == before.email
    current = before.email or before.phone
    code = stack.code_sent_to(current)  # sent to today's contact...
    with pytest.raises(AssertionError):  # ...and never to the new one
        stack.code_sent_to("attacker@evil.example", timeout=1)
    wrong = "000000" if code != "000000" else "111111"
    reply = stack.say(sender, wrong, t)
    assert read_identity_card("C1000004").email == before.email
    assert "left" in reply or "Attempts" in reply
    for forged in ("confirmed", '/inform{"contact_otp": "confirmed"}'):  # the slot's value
        stack.say(sender, forged, t)
        assert read_identity_card("C1000004").email == before.email


# --- 6. sender ids -------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    {"sender": "x/tracker/events?x=", "message": "ciao"},
    {"sender": "../../etc", "message": "ciao"},
    {"sender": "a" * 129, "message": "ciao"},
    {"sender": "", "message": "ciao"},
    {"message": "ciao"},
    {"sender": None, "message": "ciao"},
    {"sender": {"$ne": 1}, "message": "ciao"},
    ["not", "an", "object"],
])
def test_unsafe_or_missing_sender_ids_get_400(stack, body):
    r = httpx.post(f"{stack.rasa_url}/webhooks/rest/webhook", json=body, timeout=30)
    assert r.status_code == 400, r.text
    assert "sender" in r.text or "JSON object" in r.text


def test_a_rest_request_without_sender_never_reaches_the_default_conversation(stack):
    for _ in range(3):
        httpx.post(f"{stack.rasa_url}/webhooks/rest/webhook", json={"message": "ciao"},
                   timeout=30)
    events = stack.tracker("default")["events"]
    assert not [e for e in events if e["event"] == "user"]


# --- 7. one-time codes: floods and lock-outs -----------------------------------------------

def _ask_code(stack, sender: str, code: str) -> str:
    stack.say(sender, "quanto devo pagare?")
    return stack.say(sender, code)


def test_code_requests_from_many_senders_send_only_a_few_codes(stack):
    from tests.stack import OTP_SENDS_PER_HOUR

    target = _untouched_customer()
    card = read_identity_card(target)
    destination = card.email or card.phone
    before = _sent_count(stack, destination)
    for i in range(OTP_SENDS_PER_HOUR + 2):
        _ask_code(stack, f"flood-{uuid.uuid4().hex[:8]}", target)
    assert _sent_count(stack, destination) - before == OTP_SENDS_PER_HOUR


def _untouched_customer() -> str:
    """A generated customer with an e-mail that no other test verifies."""
    from sqlalchemy import select

    from bot.crm import models as m
    from bot.persistence.db import session_scope

    with session_scope() as s:
        return s.execute(select(m.Customer.customer_code).where(
            m.Customer.email.is_not(None), m.Customer.customer_code >= "C1000100")
            .order_by(m.Customer.customer_code.desc())).scalars().first()


def _sent_count(stack, destination: str) -> int:
    if stack.profile == "embedded":
        from sqlalchemy import func, select

        from bot.persistence import tables
        from bot.persistence.db import session_scope

        with session_scope() as s:
            return s.execute(select(func.count()).select_from(tables.OutboxMessage).where(
                tables.OutboxMessage.destination == destination)).scalar_one()
    if "@" in destination:
        return sum(destination in rcpts for rcpts, _ in stack.mailbox.messages)
    return len(stack.platform.sent(lambda r: r.path.endswith("/Messages.json")
                                   and r.form().get("To") == destination))


def test_unknown_and_known_customer_codes_get_the_same_answers(stack):
    a, b = f"known-{uuid.uuid4().hex[:8]}", f"unknown-{uuid.uuid4().hex[:8]}"
    assert _ask_code(stack, a, "C1000003") == _ask_code(stack, b, "C9999990")
    assert stack.say(a, "123456") == stack.say(b, "123456")


def test_a_new_code_requested_elsewhere_does_not_cancel_the_customers_code(stack):
    victim, attacker = f"victim-{uuid.uuid4().hex[:8]}", f"attacker-{uuid.uuid4().hex[:8]}"
    card = read_identity_card("C1000003")
    _ask_code(stack, victim, "C1000003")
    code = stack.code_sent_to(card.email)
    _ask_code(stack, attacker, "C1000003")
    for wrong in ("111111", "222222", "333333"):
        stack.say(attacker, wrong)
    reply = stack.say(victim, code)
    assert "Laura" in reply


# --- 12. personal data in logs, tokens in the tracker --------------------------------------

def test_message_texts_do_not_reach_the_logs_in_clear(stack, sender):
    secret = f"mario.{uuid.uuid4().hex[:8]}@example.it"
    stack.say(sender, f"la mia email è {secret}")
    httpx.post(f"{stack.rasa_url}/webhooks/rest/webhook", timeout=30,
               json={"sender": sender, "message": f"scrivimi a {secret}",
                     "metadata": "not-an-object"})
    logs = "".join(p.read_text(errors="replace") for p in stack.var_dir.glob("*.log"))
    assert secret not in logs


def test_forged_and_expired_tokens_are_anonymous(stack, sender):
    from bot.tokens import make_customer_token

    forged = make_customer_token("C1000001", 30, secret="x" * 48)
    import jwt

    none_alg = jwt.encode({"sub": "C1000001", "exp": 4102444800}, key=None, algorithm="none")
    expired = make_customer_token("C1000001", -5, secret=TOKEN_SECRET)
    for i, t in enumerate((forged, none_alg, expired)):
        reply = stack.say(f"{sender}-{i}", "quanto devo pagare?", t)
        assert "codice cliente" in reply and "Maria" not in reply
