"""The production layout past one process, on the real processes: 2 Rasa servers and 2 action
servers behind HAProxy (deploy/haproxy/haproxy.cfg), the desk, the log worker, PostgreSQL,
Redis (lock store, socket.io) and RabbitMQ (event broker, relayed by the log worker).

- Load: 200 concurrent conversations (every kind of request, Italian and English, logged-in and
  anonymous, REST and socket.io) through the balancer: every message answered, in order,
  exactly once; no tracker with a doubled or interleaved turn; the conversation log holds every
  turn exactly once; both replicas served.
- socket.io across replicas: an agent's reply pushed through one Rasa server reaches a browser
  connected to the other.
- The log worker (`kill -9`) and the desk restart during the load: the log exact.
- Redis, PostgreSQL, RabbitMQ each stopped for ten seconds during traffic.
- A replica dies (`kill -9`) in the middle of the load: what was in flight on it, exactly, and
  that every conversation goes on, with its state, on the other one.
"""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field

import httpx
import pytest

from bot import balancer
from tests.integration.desk_client import (
    Agent,
    Customer,
    DeskSocket,
    password_for,
    tracker_events,
    wait_log_caught_up,
)
from tests.stack import running_stack

pytestmark = pytest.mark.integration

REPLICAS = 2
# Rasa's Redis lock ticket of a turn cut short by a dead process blocks its conversation until
# it expires (Rasa's TICKET_LOCK_LIFETIME, 60 s by default); shorter here so that the test does
# not wait a minute for it.
LOCK_LIFETIME = 10

# (language, logged in, messages): every kind of request the assistant serves
SCRIPTS = [
    ("it", True, ["ciao", "quanto devo pagare?", "che tariffa ho?",
                  "a che punto è la mia pratica?", "grazie"]),
    ("en", True, ["hi", "how much do I owe you?", "when does my contract end?",
                  "what's the status of my ticket?", "thanks"]),
    ("it", True, ["buongiorno", "vorrei comunicare la lettura del contatore", "annulla",
                  "come posso pagare la bolletta?"]),
    ("en", True, ["hello", "I want to send a meter reading", "never mind",
                  "can you explain my last bill?"]),
    ("it", False, ["salve", "c'è un guasto nella mia zona?", "cosa sai fare?", "ciao"]),
    ("en", False, ["hey", "is there a power cut near me?", "what can you do?", "bye"]),
    ("it", False, ["ciao", "voglio cambiare la mia email", "lascia stare", "grazie"]),
    ("en", False, ["good morning", "how do I move my contract to a new home?", "ok thanks"]),
]


@pytest.fixture(scope="module")
def layout(model_path, tmp_path_factory, platform_api, mailbox):
    var_dir = tmp_path_factory.mktemp("replicas")
    extra = {"TICKET_LOCK_LIFETIME": str(LOCK_LIFETIME),
             # the rate limit is not the subject here (the outage tests' customers write fast)
             "RATE_LIMIT_MESSAGES": "100000"}
    with running_stack("production", model_path, var_dir, platform_api, mailbox,
                       replicas=REPLICAS, extra_env=extra) as stack:
        balancer.wait_all_up(_stats(stack))
        yield stack


def _stats(stack) -> str:
    return balancer.stats_url(stack.var_dir / "haproxy.cfg")


def _token(customer: int) -> str:
    """A signed-in demo customer's token (the generated demo customers: C1000100 on)."""
    from bot.tokens import make_customer_token

    return make_customer_token(f"C{1000100 + customer % 200:07d}", 120)


@dataclass
class Conversation:
    sender: str
    language: str
    token: str | None
    messages: list[str]
    replies: list[list[dict]] = field(default_factory=list)
    failures: list[tuple[int, int]] = field(default_factory=list)  # (message index, status)


async def _talk(client: httpx.AsyncClient, url: str, c: Conversation,
                retry_until: float = 0.0) -> None:
    """The customer's messages one after the other, each after the previous reply. A failed
    request is noted and, when `retry_until` allows, sent again, as a customer would."""
    for i, text in enumerate(c.messages):
        body: dict = {"sender": c.sender, "message": text}
        if c.token:
            body["metadata"] = {"customer_token": c.token}
        while True:
            try:
                r = await client.post(url, json=body)
                status = r.status_code
            except httpx.HTTPError:
                status = 0
            if status == 200:
                c.replies.append(r.json())
                break
            c.failures.append((i, status))
            if time.monotonic() > retry_until:
                raise AssertionError(f"{c.sender}: message {i} ({text!r}) failed: {status}")
            await asyncio.sleep(0.5)


def _conversations(n: int, prefix: str) -> list[Conversation]:
    out = []
    for i in range(n):
        language, logged_in, messages = SCRIPTS[i % len(SCRIPTS)]
        out.append(Conversation(f"{prefix}-{i}-{uuid.uuid4().hex[:6]}", language,
                                _token(i) if logged_in else None, messages))
    return out


async def _load(url: str, conversations: list[Conversation], retry_until: float = 0.0) -> None:
    limits = httpx.Limits(max_connections=len(conversations) + 10)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        await asyncio.gather(*(_talk(client, url, c, retry_until) for c in conversations))


def _turns(events: list[dict]) -> list[tuple[str, list[str]]]:
    """(customer text, the bot's texts after it) for each user event, in tracker order."""
    turns: list[tuple[str, list[str]]] = []
    for e in events:
        if e["event"] == "user":
            turns.append((e.get("text") or "", []))
        elif e["event"] == "bot" and turns:
            turns[-1][1].append(e.get("text") or "")
    return turns


def _wait_relay_drained(stack, timeout: float = 120) -> None:
    """The log worker's relay has taken everything RabbitMQ holds for it: the queue is empty and
    the event stream's table no longer grows."""
    import aio_pika
    from sqlalchemy import create_engine, text

    async def ready() -> int:
        connection = await aio_pika.connect(host="127.0.0.1", login="guest", password="guest")
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(stack.env["RABBITMQ_QUEUE"], durable=True,
                                                passive=True)
            return queue.declaration_result.message_count

    from bot.settings import get_settings

    stream = create_engine(get_settings().events_database_url, future=True)
    try:
        deadline, last = time.monotonic() + timeout, -1
        while True:
            with stream.connect() as c:
                rows = c.execute(text("SELECT COUNT(*) FROM events")).scalar()
            if rows == last and asyncio.run(ready()) == 0:
                return
            assert time.monotonic() < deadline, "the relay did not drain RabbitMQ's queue"
            last = rows
            time.sleep(0.5)
    finally:
        stream.dispose()


def _wait_outbox_empty(timeout: float = 120) -> None:
    """Every event the trackers hold was confirmed by RabbitMQ: the tracker store's outbox
    (bot/event_outbox.py) is empty, including what a dead process left, swept by the others."""
    from sqlalchemy import create_engine, func, select

    from bot.event_outbox import OUTBOX
    from bot.settings import get_settings

    engine = create_engine(get_settings().tracker_database_url, future=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with engine.connect() as c:
                left = c.execute(select(func.count()).select_from(OUTBOX)).scalar()
            if left == 0:
                return
            assert time.monotonic() < deadline, f"{left} event(s) never left the outbox"
            time.sleep(0.5)
    finally:
        engine.dispose()


def _log_holds_every_stored_turn(stack, conversations: list[Conversation]) -> None:
    """Once the outbox is empty, the relay has drained RabbitMQ and the log caught up: every
    conversation's log holds exactly the turns its tracker holds, each once."""
    _wait_outbox_empty()
    _wait_relay_drained(stack)
    wait_log_caught_up(timeout=120, senders=[c.sender for c in conversations])
    for c in conversations:
        stored = len(_turns(tracker_events(stack.rasa_url, c.sender)))
        assert _log_turns(c.sender) == (stored, stored), (c.sender, stored)


def _slots(rasa_url: str, sender: str) -> dict:
    from tests.stack import RASA_TOKEN

    r = httpx.get(f"{rasa_url}/conversations/{sender}/tracker", params={"token": RASA_TOKEN},
                  timeout=30)
    r.raise_for_status()
    return r.json()["slots"]


def _log_turns(sender: str) -> tuple[int, int]:
    """The conversation log's count of this sender's customer messages: (turns counted on the
    conversation records, customer lines of their transcripts)."""
    from sqlalchemy import func, select

    from bot.analytics.models import Conversation as Record, ConversationMessage
    from bot.persistence.db import session_scope

    with session_scope() as db:
        turns = db.execute(select(func.coalesce(func.sum(Record.turns), 0))
                           .where(Record.sender_id == sender)).scalar()
        lines = db.execute(select(func.count(ConversationMessage.id))
                           .join(Record, ConversationMessage.conversation_id == Record.id)
                           .where(Record.sender_id == sender,
                                  ConversationMessage.sender == "customer")).scalar()
    return int(turns), int(lines)


def test_200_concurrent_conversations_through_the_balancer(layout):
    rest = _conversations(180, "load")
    before = balancer.sessions(_stats(layout))
    # socket.io customers, connected through the balancer, talking while the REST load runs
    web = [Customer(layout.rasa_url) for _ in range(20)]
    web_scripts = [SCRIPTS[i % len(SCRIPTS)] for i in range(len(web))]
    try:
        async def everyone() -> None:
            async def browser(customer: Customer, messages: list[str]) -> None:
                for text in messages:
                    await asyncio.to_thread(customer.say, text, True, 120)

            await asyncio.gather(
                _load(f"{layout.rasa_url}/webhooks/rest/webhook", rest),
                *(browser(w, script[2]) for w, script in zip(web, web_scripts)))

        asyncio.run(everyone())
        web_senders = [(w.session_id, script[2]) for w, script in zip(web, web_scripts)]
    finally:
        for w in web:
            w.close()

    # every message answered, in order, exactly once
    for c in rest:
        assert not c.failures, (c.sender, c.failures)
        assert len(c.replies) == len(c.messages) and all(c.replies), c.sender
        turns = _turns(tracker_events(layout.rasa_url, c.sender))
        assert [text for text, _ in turns] == c.messages, c.sender
        # the tracker's replies of each turn are the ones this customer received, once
        assert [said for _, said in turns] == [[m.get("text") or "" for m in reply]
                                               for reply in c.replies], c.sender
        assert bool(_slots(layout.rasa_url, c.sender)["customer_code"]) == bool(c.token)
    for sender, messages in web_senders:
        turns = _turns(tracker_events(layout.rasa_url, sender))
        assert [text for text, _ in turns] == messages, sender
        assert all(said for _, said in turns), sender

    # the conversation log holds every turn exactly once
    wait_log_caught_up(timeout=120, senders=[c.sender for c in rest] + [s for s, _ in web_senders])
    for c in rest:
        assert _log_turns(c.sender) == (len(c.messages), len(c.messages)), c.sender
    for sender, messages in web_senders:
        assert _log_turns(sender) == (len(messages), len(messages)), sender

    # both replicas (and both action servers) took their share
    served = balancer.sessions(_stats(layout))
    for i in range(1, REPLICAS + 1):
        assert served[f"rasa/rasa{i}"] - before.get(f"rasa/rasa{i}", 0) > 100, served
        assert served[f"actions/actions{i}"] - before.get(f"actions/actions{i}", 0) > 100, served


def _push(rasa_url: str, conversation_id: str, text: str) -> None:
    """An agent's reply as the desk sends it: a bot event to the conversation's latest
    channel, through one given Rasa server."""
    from tests.stack import RASA_TOKEN

    r = httpx.post(f"{rasa_url}/conversations/{conversation_id}/tracker/events",
                   params={"token": RASA_TOKEN, "output_channel": "latest",
                           "execute_side_effects": "true"},
                   json={"event": "bot", "text": text, "metadata": {"agent": "giulia"}},
                   timeout=30)
    r.raise_for_status()


def test_a_message_pushed_through_one_replica_reaches_a_customer_on_the_other(layout):
    """socket.io across replicas (python-socketio's Redis manager): a customer's browser is
    connected to one Rasa server; an agent's reply pushed through the other reaches it."""
    one, two = (layout.launcher[f"rasa-{i}"].health.rstrip("/") for i in (1, 2))
    on_one, on_two = Customer(one), Customer(two)
    try:
        assert "assistente virtuale" in on_one.say("ciao")
        assert "virtual assistant" in on_two.say("hello")
        _push(two, on_one.session_id, "Buongiorno, sono Giulia (dal processo 2).")
        on_one.wait_text("sono Giulia (dal processo 2)")
        _push(one, on_two.session_id, "Hello, this is Giulia (from process 1).")
        on_two.wait_text("this is Giulia (from process 1)")
        # each customer got only their own conversation's messages
        assert not any("process 1" in t for t in on_one.texts())
        assert not any("processo 2" in t for t in on_two.texts())
    finally:
        on_one.close()
        on_two.close()


def _desk_urls(stack) -> list[str]:
    """Each desk process's own address (not the balancer's)."""
    return [s.health.rsplit("/health", 1)[0] for name, s in stack.launcher.services.items()
            if name.startswith("desk-")]


def _on(agent: Agent, desk_url: str) -> Agent:
    """The same signed-in agent (the same session cookie) talking to another desk process."""
    other = copy.copy(agent)
    other.url = desk_url
    return other


def test_two_desks_share_one_queue_and_one_conversation(layout):
    """Two desk processes behind the balancer. An agent's page (its websocket) is on one desk
    while the requests of the same session reach the other; another agent on the other desk.
    The queue is the same on both, a conversation is claimed once, the customer's messages reach
    the agent's page whatever desk and Rasa server they went through, the agent's replies and
    the handing back reach the customer, and the handover's history is written once."""
    from sqlalchemy import select, update

    from bot.handover.models import DeskUser, Handover
    from bot.persistence.db import session_scope

    one, two = _desk_urls(layout)
    sara = Agent(one, "sara", password_for(layout.desk_url, "sara"))
    giulia = Agent(two, "giulia", password_for(layout.desk_url, "giulia"))
    page = DeskSocket(one, sara)
    customer = Customer(layout.rasa_url)
    try:
        sara.presence("online")
        giulia.presence("online")
        customer.say("voglio parlare con una persona")
        row = giulia.wait_in_queue(customer.session_id)
        assert sara.wait_in_queue(customer.session_id)["id"] == row["id"]
        # Sara claims through the second desk; Giulia, through the first, is too late
        assert _on(sara, two).post(f"/api/handovers/{row['id']}/claim").status_code == 200
        assert _on(giulia, one).post(f"/api/handovers/{row['id']}/claim").status_code == 409
        # the customer's message reaches Sara's page on the first desk
        customer.say("sono ancora qui, mi serve aiuto con la bolletta", wait_for_reply=False)
        pushed = page.wait_for(lambda m: m.get("type") == "message"
                               and m.get("handover_id") == row["id"]
                               and "bolletta" in (m.get("text") or ""))
        assert pushed["who"] == "customer"
        # her reply through the first desk, the handing back through the second
        assert sara.post(f"/api/handovers/{row['id']}/messages",
                         {"text": "Buongiorno, sono Sara: vediamo insieme."}).status_code == 200
        customer.wait_text("sono Sara")
        assert _on(sara, two).post(f"/api/handovers/{row['id']}/handback").status_code == 200
        customer.wait_text("di nuovo l'assistente virtuale")
        with session_scope() as db:
            h = db.execute(select(Handover).where(Handover.id == row["id"])).scalar_one()
            assert h.state == "closed" and h.outcome == "handed_back"
            assert [t.state for t in h.transitions] == ["queued", "assigned", "closed"]
    finally:
        page.close()
        customer.close()
        with session_scope() as db:
            db.execute(update(DeskUser).values(presence="offline"))


def test_a_replica_killed_in_the_middle_of_the_load(layout):
    """`kill -9` of one Rasa server while 60 customers talk. What happens, exactly:

    - a message in flight on the killed process gets HTTP 502 from the balancer; it is not sent
      to the other replica by the balancer (it may already have been handled), the customer is
      asked to send it again and does (here: the same text, as a retry);
    - nothing of a turn cut short is in the tracker: Rasa stores a turn's events only at its end,
      so the tracker holds the message only if the dead process had finished it (then the retry
      is a second message, answered again); a turn it had stored reaches the conversation log
      even if its events had not left the dead process (the outbox: see the end of the test);
    - the conversation's lock ticket held by the dead process expires after
      TICKET_LOCK_LIFETIME: that conversation's retry waits for it, the others are not slowed;
    - the balancer's health checks take the dead replica out within ~2 s; every new message goes
      to the other one, and each conversation goes on with its state (tracker in PostgreSQL).
    """
    victim = layout.launcher["rasa-1"]
    conversations = _conversations(60, "kill")
    url = f"{layout.rasa_url}/webhooks/rest/webhook"
    killed_at: list[float] = []

    async def scenario() -> None:
        load = asyncio.create_task(_load(url, conversations,
                                         retry_until=time.monotonic() + 180))
        # kill once the load is well under way: a third of the messages answered
        total = sum(len(c.messages) for c in conversations)
        while sum(len(c.replies) for c in conversations) < total // 3:
            await asyncio.sleep(0.05)
        os.kill(victim.proc.pid, signal.SIGKILL)
        killed_at.append(time.monotonic())
        await load

    asyncio.run(scenario())
    assert victim.proc.wait(10) == -signal.SIGKILL
    assert balancer.status(_stats(layout))["rasa/rasa1"].startswith("DOWN")

    in_flight = [(c, i) for c in conversations for i, _ in c.failures]
    for c in conversations:
        # every message answered in the end, in order
        assert len(c.replies) == len(c.messages) and all(c.replies), c.sender
        turns = _turns(tracker_events(layout.rasa_url, c.sender))
        texts = [text for text, _ in turns]
        failed = {i for i, _ in c.failures}
        # each message once, or twice in a row when the dead process had finished it before
        # the customer sent it again; never a message stored without the bot's reply
        expected_once = [m for i, m in enumerate(c.messages) if i not in failed]
        assert [t for t in texts if t in expected_once] == expected_once or \
            len(set(c.messages)) < len(c.messages), (c.sender, texts)
        assert all(said for _, said in turns), (c.sender, turns)
        for i in failed:
            assert 1 <= texts.count(c.messages[i]) <= 2, (c.sender, texts)
        # the state went on: who the customer is, and the language of an anonymous customer
        # (a signed-in one is answered in their profile's language)
        slots = _slots(layout.rasa_url, c.sender)
        assert bool(slots["customer_code"]) == bool(c.token), (c.sender, c.failures, c.replies)
        if not c.token:
            assert slots["language"] == c.language, (c.sender, slots["language"])
    # the kill hit some messages in flight, and only those failed
    statuses = {status for c in conversations for _, status in c.failures}
    assert statuses <= {502, 503, 0}, statuses

    # The log: a turn's events are stored with their outbox rows in one transaction; a turn
    # the dead process had stored but whose events RabbitMQ had not confirmed is published by
    # the other replica (bot/event_outbox.py). The log holds exactly what the trackers hold.
    _log_holds_every_stored_turn(layout, conversations)

    # and the replica, started again, is back in the balancer
    layout.launcher.restart("rasa-1")
    deadline = time.monotonic() + 30
    while not balancer.status(_stats(layout))["rasa/rasa1"].startswith("UP"):
        assert time.monotonic() < deadline, "the restarted replica never came back"
        time.sleep(0.2)
    print(f"in flight on the killed replica: {len(in_flight)} message(s)")


def test_a_browser_whose_replica_dies_goes_on_through_the_other(layout):
    """The demo page's chat widget (rasa-webchat in headless Chromium) holds its socket.io
    connection through the balancer to one Rasa server, which is then killed (`kill -9`). The
    widget reconnects by itself through the balancer to the other replica (the stickiness
    cookie names a dead server: HAProxy sends it elsewhere), to the same conversation, and the
    customer's next message is answered there, with the conversation's state."""
    from playwright.sync_api import expect, sync_playwright

    from tests.integration.test_web import BOT, CHROMIUM, send, session_id

    stats = _stats(layout)
    victim = None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox"])
        try:
            page = browser.new_context().new_page()
            page.goto(f"{layout.site_url}/en")
            expect(page.locator(BOT).first).to_contain_text("virtual assistant",
                                                            timeout=30_000)
            sid = session_id(page)
            on = [name for name, n in balancer.open_sessions(stats).items()
                  if name.startswith("rasa_socketio/") and n > 0]
            assert len(on) == 1, on
            victim = layout.launcher[on[0].split("/")[1].replace("rasa", "rasa-")]
            os.kill(victim.proc.pid, signal.SIGKILL)
            victim.proc.wait(10)
            answered = page.locator(BOT).count()
            send(page, "what can you do?")
            expect(page.locator(BOT).nth(answered)).to_be_visible(timeout=60_000)
            assert session_id(page) == sid
            # the widget sends what was typed while it reconnected once it is connected again
            # (another bot message, such as the welcome again, can be shown first)
            deadline = time.monotonic() + 60
            while not _answered(events := tracker_events(layout.rasa_url, sid),
                                "what can you do?"):
                assert time.monotonic() < deadline, [
                    (e["event"], e.get("text")) for e in events if e["event"] in ("user", "bot")]
                time.sleep(0.5)
            assert _slots(layout.rasa_url, sid)["language"] == "en"
        finally:
            browser.close()
            if victim is not None:  # the replica back for the tests that follow
                layout.launcher.restart(victim.name)
                balancer.wait_all_up(stats)


def _answered(events: list[dict], text: str) -> bool:
    """Whether the customer's `text` is in the conversation with a bot reply after it."""
    said = [i for i, e in enumerate(events) if e["event"] == "user" and e.get("text") == text]
    return bool(said) and any(e["event"] == "bot" for e in events[said[-1] + 1:])


def test_the_log_worker_killed_and_the_desk_restarted_during_the_load(layout):
    """`kill -9` of the log worker (relay and log) and a restart of the desk while 40 customers
    talk: once the worker is started again, the log holds every turn of every conversation
    exactly once (RabbitMQ gives back what the dead relay had not acknowledged, and the relay
    recognises what it had already stored; the log's cursor moves with its records)."""
    conversations = _conversations(40, "restart")
    url = f"{layout.rasa_url}/webhooks/rest/webhook"
    worker = layout.launcher["worker"]

    async def scenario() -> None:
        load = asyncio.create_task(_load(url, conversations))
        total = sum(len(c.messages) for c in conversations)
        while sum(len(c.replies) for c in conversations) < total // 3:
            await asyncio.sleep(0.05)
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait()
        await asyncio.to_thread(layout.launcher.restart, "desk-1")
        worker.start(layout.env, append=True)
        await load

    asyncio.run(scenario())
    assert layout.launcher.running()
    for c in conversations:
        assert not c.failures and len(c.replies) == len(c.messages), c.sender
    wait_log_caught_up(timeout=120, senders=[c.sender for c in conversations])
    for c in conversations:
        assert _log_turns(c.sender) == (len(c.messages), len(c.messages)), c.sender


# ---- the engines blink ------------------------------------------------------------------------

OUTAGE_SECONDS = 10
PG_CLUSTER = ["pg_ctlcluster", "--skip-systemctl-redirect"]


def _pg(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[0]
    extra = ["-m", "fast"] if action == "stop" else []
    subprocess.run([*PG_CLUSTER, version, "main", action, *extra], check=True)


def _redis(action: str) -> None:
    if action == "stop":
        subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"],
                       check=False, capture_output=True)
    else:  # as scripts/services starts it
        subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1",
                        "--port", "6379", "--save", "", "--appendonly", "no", "--dir",
                        "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"], check=True)


def _rabbitmq(action: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", "stop_app" if action == "stop" else "start_app"],
                   check=True, capture_output=True)


ENGINES = {"redis": (_redis, 6379), "postgresql": (_pg, 5432), "rabbitmq": (_rabbitmq, 5672)}


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_port(port: int, open_: bool, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _port_open(port) != open_:
        assert time.monotonic() < deadline, f"port {port} still {'closed' if open_ else 'open'}"
        time.sleep(0.2)


@dataclass
class Turn:
    sent_at: float
    status: int
    texts: list[str]


@pytest.mark.parametrize("engine", list(ENGINES))
def test_an_engine_away_for_ten_seconds(layout, engine):
    """Redis, PostgreSQL or RabbitMQ stopped for ten seconds while customers talk, then started
    again. A message that cannot be handled gets the technical-problem reply ("try again
    shortly") at once, never a hang or an empty answer; every process recovers by itself (the
    same processes run before and after); afterwards every customer is answered normally, and
    the conversation log holds every turn the trackers hold, once (RabbitMQ: the events that
    could not be published wait in the tracker store's outbox and are published once it is
    back)."""
    from connectors.outage import texts

    problem = set(texts().values())
    stop_start, port = ENGINES[engine]
    pids = {name: s.proc.pid for name, s in layout.launcher.services.items()}
    customers = _conversations(10, f"blink-{engine}")
    url = f"{layout.rasa_url}/webhooks/rest/webhook"
    turns: dict[str, list[Turn]] = {c.sender: [] for c in customers}
    phase = {"restarted_at": None}

    async def customer(client: httpx.AsyncClient, c: Conversation, done: asyncio.Event) -> None:
        i = 0
        while not done.is_set():
            body: dict = {"sender": c.sender, "message": c.messages[i % len(c.messages)]}
            if c.token:
                body["metadata"] = {"customer_token": c.token}
            sent = time.monotonic()
            try:
                r = await client.post(url, json=body)
                answer = r.json()
                status = r.status_code
                said = [m.get("text") or "" for m in answer] if isinstance(answer, list) else []
            except (httpx.HTTPError, ValueError):
                status, said = 0, []
            turns[c.sender].append(Turn(sent, status, said))
            i += 1
            await asyncio.sleep(0.2)  # the customer reads the reply

    def recovered() -> bool:
        """Every customer answered normally twice after the engine came back."""
        back = phase["restarted_at"]
        return back is not None and all(
            sum(1 for t in ts if t.sent_at > back and t.status == 200 and t.texts
                and not problem & set(t.texts)) >= 2 for ts in turns.values())

    async def scenario() -> None:
        done = asyncio.Event()
        async with httpx.AsyncClient(timeout=60) as client:
            load = [asyncio.create_task(customer(client, c, done)) for c in customers]
            while sum(len(ts) for ts in turns.values()) < 20:  # talking normally
                await asyncio.sleep(0.05)
            await asyncio.to_thread(stop_start, "stop")
            await asyncio.to_thread(_wait_port, port, False)
            await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself, not a wait for something
            await asyncio.to_thread(stop_start, "start")
            await asyncio.to_thread(_wait_port, port, True)
            phase["restarted_at"] = time.monotonic()
            deadline = time.monotonic() + 120
            while not recovered() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            done.set()
            await asyncio.gather(*load)

    try:
        asyncio.run(scenario())
    finally:  # whatever happened, the engine runs again for the rest of the suite
        if not _port_open(port):
            stop_start("start")
            _wait_port(port, True)

    assert recovered(), {s: [(t.status, t.texts[:1]) for t in ts[-5:]] for s, ts in turns.items()}
    everything = [t for ts in turns.values() for t in ts]
    # never a hang (the client's 60 s), never an error status, never an empty answer
    assert all(t.status == 200 for t in everything), {t.status for t in everything}
    assert all(t.texts for t in everything)
    told = sum(1 for t in everything if problem & set(t.texts))
    if engine in ("redis", "postgresql"):  # the turns during the outage could not run
        assert told > 0
    else:  # RabbitMQ: Rasa goes on without it
        assert told == 0
    # the same processes, none restarted
    assert {name: s.proc.pid for name, s in layout.launcher.services.items()} == pids
    assert layout.launcher.running()
    # the log holds every turn the trackers hold, once (RabbitMQ: what could not be published
    # waited in the tracker store's outbox)
    _log_holds_every_stored_turn(layout, customers)
    print(f"{engine}: {told} message(s) answered with the technical-problem reply")
