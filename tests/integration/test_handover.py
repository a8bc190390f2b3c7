"""Live handover against the real stack (Rasa server, action server, desk) on both profiles:
triggers in both languages, the queue, claiming, live messages both ways, handing back, the bot's
silence, restarts, timeouts, cancellation, and nobody left waiting alone."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from bot.handover.models import OPEN_STATES, DeskUser, Handover
from bot.persistence.db import session_scope
from tests.integration.desk_client import Agent, Customer, password_for
from tests.stack import AGENT_REPLY_TIMEOUT, HANDOVER_MAX_WAIT

pytestmark = pytest.mark.integration


def _reset() -> None:
    with session_scope() as db:
        db.execute(update(DeskUser).values(presence="offline"))
        db.execute(update(Handover).where(Handover.state.in_(OPEN_STATES))
                   .values(state="abandoned", outcome="test cleanup"))


@pytest.fixture
def desk(stack):
    """A clean desk: nobody online, nobody waiting."""
    _reset()
    yield stack
    _reset()


def handover_of(conversation_id: str) -> Handover | None:
    with session_scope() as db:
        h = db.execute(select(Handover).where(Handover.conversation_id == conversation_id)
                       .order_by(Handover.id.desc())).scalars().first()
        if h is not None:
            h.transitions  # noqa: B018
        return h


def backdate(conversation_id: str, seconds: float, *columns: str) -> None:
    """Move the latest handover's `columns` back by `seconds`: to the desk's timers, which
    compare them with the clock, as if that much time had passed."""
    with session_scope() as db:
        h = db.execute(select(Handover).where(Handover.conversation_id == conversation_id)
                       .order_by(Handover.id.desc())).scalars().first()
        for column in columns:
            setattr(h, column, getattr(h, column) - timedelta(seconds=seconds))


def wait_state(conversation_id: str, state: str, timeout: float = 30) -> Handover:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = handover_of(conversation_id)
        if h is not None and h.state == state:
            return h
        time.sleep(0.3)
    raise AssertionError(f"handover of {conversation_id} never became {state}: "
                         f"{handover_of(conversation_id) and handover_of(conversation_id).state}")


def test_full_handover_on_the_web_channel(desk, token):
    agent = Agent(desk.desk_url, "giulia")
    agent.presence("online")
    customer = Customer(desk.rasa_url, {"customer_token": token("C1000001")})
    try:
        customer.say("ciao")
        reply = customer.say("voglio parlare con un operatore")
        assert "1° in coda" in reply and "minuti" in reply
        row = agent.wait_in_queue(customer.session_id)
        assert row["customer"] == "Maria Rossi" and row["language"] == "it"
        assert row["reason"] == "request_human" and row["channel"] == "web"
        # the bot says nothing while the conversation waits or is with an agent
        before = len(customer.texts())
        customer.say("c'è qualcuno?", wait_for_reply=False)
        assert agent.post(f"/api/handovers/{row['id']}/claim").status_code == 200
        detail = agent.get(f"/api/handovers/{row['id']}").json()
        card = detail["pack"]["card"]
        assert card["name"] == "Maria Rossi" and card["persona"] == "family"
        assert card["unpaid_bills"] and card["supplies"] and card["last_interactions"]
        said = [(line["who"], line["text"], line.get("intent")) for line in
                detail["pack"]["transcript"]]
        assert ("customer", "voglio parlare con un operatore", "request_human") in said
        assert "Maria Rossi" in detail["pack"]["summary"]
        customer.say("ho una domanda sulla bolletta", wait_for_reply=False)
        turn = customer.wait_turn()  # Rasa has handled it: still silent
        assert [e for e in turn if e["event"] in ("bot", "action")
                and e.get("name") != "action_extract_slots"] == [], turn
        assert len(customer.texts()) == before
        live = agent.get(f"/api/handovers/{row['id']}").json()["live"]
        assert any(line["text"] == "ho una domanda sulla bolletta" for line in live)
        # the agent's reply reaches the customer's own channel and the transcript
        assert agent.post(f"/api/handovers/{row['id']}/messages",
                          {"text": "Buongiorno Maria, sono Giulia. Mi dica."}).status_code == 200
        customer.wait_text("sono Giulia")
        events = desk.tracker(customer.session_id)["events"]
        agent_says = [e for e in events if e["event"] == "bot" and "sono Giulia" in e["text"]]
        assert agent_says[0]["metadata"]["agent"] == "Giulia (billing)"
        # handing back: the bot greets again and asks for feedback, then answers as usual
        assert agent.post(f"/api/handovers/{row['id']}/handback").status_code == 200
        customer.wait_text("di nuovo l'assistente virtuale")
        customer.wait_text("Da 1 a 5")
        h = handover_of(customer.session_id)
        assert h.state == "closed" and h.outcome == "handed_back"
        assert [t.state for t in h.transitions] == ["queued", "assigned", "closed"]
        assert h.wait_seconds is not None and h.handling_seconds is not None
        assert "grazie" in customer.say("5").lower()
    finally:
        customer.close()


def test_closing_as_resolved_asks_for_feedback_in_english(desk, token):
    agent = Agent(desk.desk_url, "giulia")
    agent.presence("online")
    customer = Customer(desk.rasa_url, {"customer_token": token("C1000004")})
    try:
        reply = customer.say("I want to talk to a human")
        assert "number 1 in the queue" in reply
        row = agent.wait_in_queue(customer.session_id)
        assert row["language"] == "en"
        agent.post(f"/api/handovers/{row['id']}/claim")
        agent.post(f"/api/handovers/{row['id']}/messages", {"text": "Hi John, Giulia here."})
        customer.wait_text("Giulia here")
        assert agent.post(f"/api/handovers/{row['id']}/close").status_code == 200
        customer.wait_text("closed the conversation as resolved")
        customer.wait_text("From 1 to 5")
        assert handover_of(customer.session_id).outcome == "resolved"
    finally:
        customer.close()


@pytest.mark.parametrize("language,ask,cancel,back", [
    ("it", "mi passi un operatore per favore", "annulla", "ho annullato l'attesa"),
    ("en", "can I speak to a person please", "cancel", "I've cancelled the wait"),
])
def test_customer_can_cancel_while_waiting(desk, language, ask, cancel, back):
    Agent(desk.desk_url, "sara").presence("online")
    customer = Customer(desk.rasa_url)
    try:
        customer.say(ask)
        wait_state(customer.session_id, "queued")
        customer.say(cancel, wait_for_reply=False)
        customer.wait_text(back)
        h = wait_state(customer.session_id, "abandoned")
        assert [t.state for t in h.transitions] == ["queued", "abandoned"]
    finally:
        customer.close()


@pytest.mark.parametrize("code,ask,nobody,offer", [
    ("C1000001", "voglio parlare con un operatore", "nessun operatore",
     "richiesta scritta"),
    ("C1000004", "I want to speak to an agent", "No agent", "written request"),
])
def test_nobody_online_means_callback_or_ticket_never_waiting(desk, stack, sender, token, code,
                                                             ask, nobody, offer):
    t = token(code)
    reply = stack.say(sender, ask, t)
    assert nobody in reply and offer in reply
    assert handover_of(sender) is None  # nobody to wait for: not queued
    reply = stack.say(sender, "/affirm", t)  # the "written request" button
    from bot.crm import models as m

    with session_scope() as db:
        ticket = db.execute(select(m.Ticket).where(m.Ticket.conversation_id == sender)
                            ).scalars().one()
    assert ticket.kind == "request" and ticket.ticket_id in reply and ask in ticket.description


def test_bot_stays_silent_while_the_conversation_is_with_a_person(desk, stack, sender, token):
    """(The pause across restarts of the desk and Rasa: tests/integration/test_restarts.py.)"""
    agent = Agent(desk.desk_url, "giulia")
    agent.presence("online")
    t = token("C1000003")
    assert "in coda" in stack.say(sender, "operatore", t)
    for text in ("ciao?", "/greet", "la mia bolletta", "zxqv blorp", "voglio un operatore"):
        assert stack.talk(sender, text, t) == []
    row = agent.wait_in_queue(sender)
    assert agent.post(f"/api/handovers/{row['id']}/claim").status_code == 200
    assert agent.post(f"/api/handovers/{row['id']}/messages",
                      {"text": "Buongiorno, eccomi"}).status_code == 200
    assert stack.talk(sender, "ci siete ancora?", t) == []
    assert stack.talk(sender, "pronto?", t) == []
    assert agent.post(f"/api/handovers/{row['id']}/close").status_code == 200
    # the bot is back: it answers about the bills (a bill to pay, or none: "bollette")
    assert "bollett" in stack.say(sender, "vorrei vedere la mia bolletta", t).lower()


def test_an_agent_who_does_not_answer_loses_the_conversation(desk):
    agent = Agent(desk.desk_url, "sara")
    agent.presence("online")
    customer = Customer(desk.rasa_url)
    try:
        customer.say("voglio parlare con una persona")
        row = agent.wait_in_queue(customer.session_id)
        agent.post(f"/api/handovers/{row['id']}/claim")
        wait_state(customer.session_id, "assigned")
        # the agent has been silent for AGENT_REPLY_TIMEOUT seconds (the claim moved back in
        # time; when the timer fires and when not is tests/test_handover.py's): the desk's
        # timer, checking every few seconds, puts the conversation back in the queue
        backdate(customer.session_id, AGENT_REPLY_TIMEOUT + 1, "assigned_at")
        h = wait_state(customer.session_id, "queued", timeout=30)
        assert [t.state for t in h.transitions] == ["queued", "assigned", "queued"]
        assert "did not answer" in h.transitions[-1].note
        assert any(r["id"] == row["id"] for r in agent.queue())
    finally:
        customer.close()


def test_a_wait_too_long_turns_into_a_callback_or_ticket_offer(desk):
    Agent(desk.desk_url, "sara").presence("online")
    customer = Customer(desk.rasa_url)
    try:
        customer.say("I'd like to speak to a human")
        wait_state(customer.session_id, "queued")
        # waiting for HANDOVER_MAX_WAIT seconds (the request moved back in time)
        backdate(customer.session_id, HANDOVER_MAX_WAIT + 1, "created_at")
        customer.wait_text("wait is getting too long", timeout=30)
        customer.wait_text("written request")
        h = wait_state(customer.session_id, "fallback")
        assert [t.state for t in h.transitions] == ["queued", "fallback"]
    finally:
        customer.close()


def test_agents_see_only_their_conversations(desk, token):
    giulia, sara = Agent(desk.desk_url, "giulia"), Agent(desk.desk_url, "sara")
    giulia.presence("online")
    sara.presence("online")
    customer = Customer(desk.rasa_url, {"customer_token": token("C1000001")})
    try:
        # a billing question first (the three words "la mia bolletta" alone are now taken as
        # `inform` by the model: a known NLU gap, not what this routing test is about)
        customer.say("quanto devo pagare di bolletta?")
        customer.say("voglio un operatore")
        row = giulia.wait_in_queue(customer.session_id)
        assert row["skill"] == "billing"
        assert all(r["id"] != row["id"] for r in sara.queue())  # commercial agent
        assert sara.post(f"/api/handovers/{row['id']}/claim").status_code == 409
        assert giulia.post(f"/api/handovers/{row['id']}/claim").status_code == 200
        assert sara.get(f"/api/handovers/{row['id']}").status_code == 403
        assert sara.post(f"/api/handovers/{row['id']}/messages", {"text": "hi"}).status_code == 403
        lead = Agent(desk.desk_url, "lucia")
        assert lead.post(f"/api/handovers/{row['id']}/claim").status_code == 403
    finally:
        customer.close()


def test_every_desk_route_needs_a_login(desk):
    from bot.desk.app import create_app

    app = create_app(f"route_walk_{desk.profile}")  # Sanic app names are unique per process
    public = {"/login", "/health"}
    walked = 0
    for route in app.router.routes:
        path = "/" + route.path.lstrip("/")
        if path in public or path.startswith("/static"):
            continue
        concrete = re.sub(r"<[^>]+>", "1", path)
        for method in route.methods:
            if path == "/ws":
                continue
            r = httpx.request(method, f"{desk.desk_url}{concrete}", follow_redirects=False)
            assert r.status_code in (401, 302), (method, concrete, r.status_code)
            if r.status_code == 302:
                assert r.headers["location"] == "/login"
            walked += 1
    assert walked >= 10
    # signed in, but without the CSRF token: refused
    agent = Agent(desk.desk_url, "giulia")
    r = httpx.post(f"{desk.desk_url}/api/presence", json={"presence": "online"},
                   headers=agent.headers)
    assert r.status_code == 403
    # the WebSocket refuses strangers too
    import asyncio

    import websockets

    async def ws_refused():
        url = desk.desk_url.replace("http", "ws") + "/ws"
        async with websockets.connect(url) as ws:
            try:
                await asyncio.wait_for(ws.recv(), 5)
            except websockets.ConnectionClosed as closed:
                return closed.code
        return None

    assert asyncio.run(ws_refused()) == 4401
    # a wrong password is refused with a message, not a session
    page = httpx.get(f"{desk.desk_url}/login")

    cookie = re.search(r"desk_login_csrf=([^;]+)", page.headers["set-cookie"]).group(1)
    form = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = httpx.post(f"{desk.desk_url}/login", headers={"Cookie": f"desk_login_csrf={cookie}"},
                   data={"username": "giulia", "password": "wrong", "csrf_token": form})
    assert r.status_code == 401 and "desk_session" not in r.headers.get("set-cookie", "")
    r = httpx.post(f"{desk.desk_url}/login",
                   data={"username": "giulia", "password": password_for(desk.desk_url, "giulia")})
    assert r.status_code == 403  # no CSRF token


def _customer(persona: str, language: str, vip: bool | None = None) -> str:
    from bot.crm import models as m

    with session_scope() as db:
        q = select(m.Customer.customer_code).where(m.Customer.persona == persona,
                                                   m.Customer.language == language)
        if vip is not None:
            q = q.where(m.Customer.vip.is_(vip))
        return db.execute(q.order_by(m.Customer.customer_code)).scalars().first()


# (language, customer: code or (persona, language), messages, reason of the handover)
TRIGGERS = [
    ("it", "C1000001", ["vorrei la domiciliazione bancaria", "voglio parlare con un operatore"],
     "request_human"),
    ("en", "C1000004", ["I want to set up a direct debit", "let me talk to a human"],
     "request_human"),
    ("it", "C1000001", ["zxqv blorp fnord", "qwerty asdf zxcv"], "misunderstanding"),
    ("en", "C1000004", ["zxqv blorp fnord", "qwerty asdf zxcv"], "misunderstanding"),
    ("it", "C1000002", ["zxqv blorp fnord"], "misunderstanding"),
    ("en", ("senior", "en"), ["zxqv blorp fnord"], "misunderstanding"),
    ("it", "C1000003", ["siete dei ladri, è la terza volta che vi scrivo!!"], "frustration"),
    ("en", "C1000004", ["this is ridiculous, worst service ever"], "frustration"),
    ("it", "C1000001", ["devo traslocare il mese prossimo"], "move_home"),
    ("en", "C1000004", ["I'm moving house next month"], "move_home"),
    ("it", "C1000003", ["voglio fare un reclamo",
                        "mi avete addebitato due volte la bolletta di ottobre", "sì"], "complaint"),
    ("en", "C1000004", ["I want to file a complaint",
                        "you charged me twice for the October bill", "yes"], "complaint"),
    ("it", "C1000005", ["chi ha vinto il campionato di calcio?"], "vip"),
    ("en", ("business", "en"), ["who won the football league?"], "vip"),
]


@pytest.mark.parametrize("language,who,messages,reason", TRIGGERS,
                         ids=[f"{t[3]}-{t[0]}-{i}" for i, t in enumerate(TRIGGERS)])
def test_handover_triggers(desk, stack, sender, token, language, who, messages, reason):
    for name in ("giulia", "marco", "sara"):
        Agent(desk.desk_url, name).presence("online")
    code = who if isinstance(who, str) else _customer(*who)
    assert code, f"the demo data has no {who} customer"
    t = token(code)
    replies = [stack.say(sender, text, t) for text in messages]
    h = handover_of(sender)
    assert h is not None and h.state == "queued", replies
    assert h.reason == reason and h.language == language and h.customer_code == code
    queued = "in coda" if language == "it" else "in the queue"
    assert queued in replies[-1]
    assert stack.talk(sender, "ciao?" if language == "it" else "hello?", t) == []
    if reason == "move_home":
        assert h.skill == "commercial"


def test_desk_sign_in_is_rate_limited_per_address_and_username(desk):
    from tests.stack import RATE_LIMIT

    page = httpx.get(f"{desk.desk_url}/login")
    cookie = re.search(r"desk_login_csrf=([^;]+)", page.headers["set-cookie"]).group(1)
    form = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)

    def attempt(username: str) -> int:
        return httpx.post(f"{desk.desk_url}/login",
                          headers={"Cookie": f"desk_login_csrf={cookie}"},
                          data={"username": username, "password": "guess",
                                "csrf_token": form}).status_code

    from bot.desk.lockout import FREE_ATTEMPTS

    guesser = f"guesser-{desk.profile}-{time.time_ns()}"  # a lock outlives the run in Redis
    codes = [attempt(guesser) for _ in range(RATE_LIMIT + 1)]
    # the account locks after FREE_ATTEMPTS failures (bot.desk.lockout, issue 10 item 12),
    # before the per-address limit is reached
    assert codes == [401] * FREE_ATTEMPTS + [429] * (RATE_LIMIT + 1 - FREE_ATTEMPTS)
    assert attempt(f"someone-else-{desk.profile}-{time.time_ns()}") == 401  # others unaffected
