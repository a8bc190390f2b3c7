"""Test helpers: an agent using the desk's HTTP API, a customer on the socket.io channel, and
the observable state they wait on (Rasa's tracker, the desk's conversation log)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from urllib.parse import quote

import httpx
import socketio

DEMO_PASSWORDS = {"giulia": "giulia-demo-pass", "marco": "marco-demo-pass",
                  "sara": "sara-demo-pass", "lucia": "lucia-demo-pass",
                  "admin": "admin-demo-pass"}
# The desk users' passwords per desk URL: the demo ones on the embedded stack, fresh ones on the
# production stack (which refuses to start with the published demo passwords). Filled by
# tests/stack.py.
PASSWORDS: dict[str, dict[str, str]] = {}


def password_for(desk_url: str, username: str) -> str:
    return PASSWORDS.get(desk_url.rstrip("/"), DEMO_PASSWORDS)[username]


class Agent:
    """Cookies are sent by hand: the desk's cookies are `Secure`, and httpx's cookie jar keeps
    those for https only, as it should."""

    def __init__(self, desk_url: str, username: str, password: str | None = None) -> None:
        self.url = desk_url
        page = httpx.get(f"{desk_url}/login")
        login_cookie = re.search(r"desk_login_csrf=([^;]+)", page.headers["set-cookie"]).group(1)
        form_token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        r = httpx.post(f"{desk_url}/login", headers={"Cookie": f"desk_login_csrf={login_cookie}"},
                       data={"username": username, "csrf_token": form_token,
                             "password": password or password_for(desk_url, username)})
        assert r.status_code == 302, r.text
        self.session = re.search(r"desk_session=([^;]+)", r.headers["set-cookie"]).group(1)
        desk = httpx.get(f"{desk_url}/desk", headers=self.headers)
        self.csrf = re.search(r'name="csrf-token" content="([^"]+)"', desk.text).group(1)

    @property
    def headers(self) -> dict:
        return {"Cookie": f"desk_session={self.session}"}

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", headers=self.headers, timeout=30)

    def post(self, path: str, body: dict | None = None) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body or {}, timeout=60,
                          headers={**self.headers, "X-CSRF-Token": self.csrf})

    def presence(self, value: str) -> None:
        assert self.post("/api/presence", {"presence": value}).status_code == 200

    def queue(self) -> list[dict]:
        return self.get("/api/queue").json()["queue"]

    def wait_in_queue(self, conversation_id: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for h in self.queue():
                if h["conversation_id"] == conversation_id:
                    return h
            time.sleep(0.2)
        raise AssertionError(f"{conversation_id} never appeared in the queue")


def tracker_events(rasa_url: str, conversation_id: str) -> list[dict]:
    """Every event of the conversation, from Rasa's HTTP API (reading never saves a tracker)."""
    from tests.stack import RASA_TOKEN

    r = httpx.get(f"{rasa_url}/conversations/{quote(conversation_id, safe=':+@=~')}/tracker",
                  params={"token": RASA_TOKEN, "include_events": "ALL"}, timeout=30)
    r.raise_for_status()
    return r.json()["events"]


def turn_of(events: list[dict], n: int) -> list[dict] | None:
    """The events of the bot's turn after the customer's n-th message (1-based), or None while
    the tracker does not hold that message yet.

    Rasa saves the tracker once, when it has handled the message (`MessageProcessor.
    handle_message`), so a saved message means its turn is over; the turn's events end at the
    bot's `action_listen`, or at the pause of a handover (the bot then stops predicting)."""
    users = [i for i, e in enumerate(events) if e.get("event") == "user"]
    if len(users) < n:
        return None
    turn = []
    for e in events[users[n - 1] + 1:]:
        if e.get("event") == "user":
            break
        turn.append(e)
        if e.get("event") == "pause" or (e.get("event") == "action"
                                          and e.get("name") == "action_listen"):
            break
    return turn


def said(turn: list[dict]) -> list[str]:
    """The texts the socket.io channel emits for the turn's bot messages, in order (Rasa's
    `SocketIOOutput` sends one message per paragraph)."""
    return [part for e in turn if e.get("event") == "bot" and e.get("text")
            for part in e["text"].strip().split("\n\n")]


def _in_order(expected: list[str], texts: list[str]) -> bool:
    """Whether `expected` is a subsequence of `texts` (others may push in between)."""
    it = iter(texts)
    return all(any(t == want for t in it) for want in expected)


def wait_stream_complete(timeout: float = 60, senders: list[str] | None = None) -> None:
    """Production: waits until the log worker's relay has stored in the event stream's table
    every event Rasa's tracker store holds (of `senders`, or of everyone): Rasa stores a turn's
    events, then publishes the same events to RabbitMQ, and bot.event_relay stores them a moment
    later. Embedded: Rasa's SQL broker writes the table itself, nothing to wait for."""
    from sqlalchemy import bindparam, create_engine, text

    from bot.settings import get_settings

    s = get_settings()
    if s.profile != "production":
        return
    if senders is None:
        count = text("SELECT COUNT(*) FROM events")
        params: dict = {}
    else:
        count = text("SELECT COUNT(*) FROM events WHERE sender_id IN :senders").bindparams(
            bindparam("senders", expanding=True))
        params = {"senders": list(senders)}
    tracker = create_engine(s.tracker_database_url, future=True)
    stream = create_engine(s.events_database_url, future=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with tracker.connect() as t, stream.connect() as e:
                held = t.execute(count, params).scalar()
                relayed = e.execute(count, params).scalar()
            if relayed >= held:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the event stream has {relayed} of the tracker store's "
                                     f"{held} events after {timeout}s")
            time.sleep(0.1)
    finally:
        tracker.dispose()
        stream.dispose()


def wait_log_caught_up(timeout: float = 60, complete: bool = True,
                       senders: list[str] | None = None) -> int:
    """Waits until the log worker has read Rasa's event stream up to its latest event now (and,
    unless `complete` is False, until the stream holds every event the tracker store holds),
    and returns its cursor. The worker moves its cursor in the same transaction
    as the records it writes (bot.analytics.ingest.sync), one batch after the other: once the
    cursor is there, every batch begun before that event was written is committed too."""
    from sqlalchemy import select

    from bot import event_stream
    from bot.analytics.ingest import SOURCE
    from bot.analytics.models import StreamCursor
    from bot.persistence.db import session_scope

    deadline = time.monotonic() + timeout
    if complete:
        wait_stream_complete(timeout, senders)
    target = event_stream.latest_id()
    while True:
        with session_scope() as db:
            cursor = db.execute(select(StreamCursor.position)
                                .where(StreamCursor.source == SOURCE)).scalar()
        if cursor is not None and cursor >= target:
            return cursor
        if time.monotonic() > deadline:
            raise AssertionError(f"the log worker is at event {cursor}, not {target}, "
                                 f"after {timeout}s")
        time.sleep(0.2)


class Customer:
    """A customer on the web widget's socket.io channel, in a thread of its own."""

    def __init__(self, rasa_url: str, metadata: dict | None = None) -> None:
        self.rasa_url, self.metadata = rasa_url, metadata or {}
        self.received: list[dict] = []
        self.sent = 0  # messages emitted: the n-th is the tracker's n-th user event
        # The conversation id (the tracker's sender id, what agents see) and the session the
        # server issued for it (what only this browser knows).
        self.session_id: str | None = None
        self.session: str | None = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._call(self._connect())

    def _call(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _connect(self) -> None:
        self.client = socketio.AsyncClient()
        confirmed = asyncio.Event()

        @self.client.on("session_confirm")
        async def on_session(data):
            self.session = data if isinstance(data, str) else data.get("session_id")
            self.session_id = self.session.split(".")[0]
            confirmed.set()

        @self.client.on("bot_uttered")
        async def on_bot(data):
            self.received.append(data)

        await self.client.connect(self.rasa_url, socketio_path="/socket.io",
                                  transports=["websocket"])
        await self.client.emit("session_request", {"session_id": uuid.uuid4().hex})
        await asyncio.wait_for(confirmed.wait(), 20)

    def say(self, text: str, wait_for_reply: bool = True, timeout: float = 60) -> str:
        """Sends `text`; unless told not to wait, returns what the bot said in its turn, once
        the turn is over (the tracker holds the message) and every message of it arrived."""
        before = len(self.received)
        self._call(self.client.emit("user_uttered", {"message": text,
                                                     "session_id": self.session,
                                                     "customData": self.metadata}))
        self.sent += 1
        if not wait_for_reply:
            return ""
        turn = self.wait_turn(timeout=timeout, since=before)
        assert said(turn), f"the bot said nothing to {text!r}: {turn}"
        return "\n".join(m.get("text", "") for m in self.received[before:])

    def wait_turn(self, n: int | None = None, timeout: float = 60,
                  since: int | None = None) -> list[dict]:
        """The events of the bot's turn after this customer's n-th message (by default the
        last one sent), once Rasa has handled it and its messages reached this browser (those
        received from index `since` on, by default all of them)."""
        n = self.sent if n is None else n
        deadline = time.monotonic() + timeout
        turn = None
        while turn is None:
            turn = turn_of(tracker_events(self.rasa_url, self.session_id), n)
            if turn is None:
                if time.monotonic() > deadline:
                    raise AssertionError(f"message {n} not handled in {timeout}s; got "
                                         f"{self.texts()}")
                time.sleep(0.1)
        expected = said(turn)
        self.wait_for(lambda texts: _in_order(expected, texts[since or 0:]),
                      max(deadline - time.monotonic(), 5))
        return turn

    def texts(self) -> list[str]:
        return [m.get("text", "") for m in self.received]

    def wait_for(self, predicate, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.texts()):
                return
            time.sleep(0.1)
        raise AssertionError(f"not received in {timeout}s; got {self.texts()}")

    def wait_text(self, fragment: str, timeout: float = 30) -> float:
        """Waits for a message containing `fragment`; returns when it arrived (monotonic)."""
        self.wait_for(lambda texts: any(fragment in t for t in texts), timeout)
        return time.monotonic()

    def close(self) -> None:
        try:
            self._call(self.client.disconnect(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


class DeskSocket:
    """An agent's live WebSocket to the desk, read in a thread of its own."""

    def __init__(self, desk_url: str, agent: Agent) -> None:
        import websockets

        self.messages: list[dict] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.opened = threading.Event()

        async def listen():
            async with websockets.connect(desk_url.replace("http", "ws", 1) + "/ws",
                                          extra_headers=agent.headers) as ws:
                self.ws = ws
                self.opened.set()
                async for raw in ws:
                    self.messages.append(json.loads(raw))

        self.task = asyncio.run_coroutine_threadsafe(listen(), self.loop)
        self.wait_for(lambda m: m.get("type") == "hello")

    def wait_for(self, predicate, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in list(self.messages):
                if predicate(m):
                    return m
            if self.task.done():
                self.task.result()  # raises what closed the socket
            time.sleep(0.05)
        raise AssertionError(f"not pushed in {timeout}s; got {self.messages}")

    def close(self) -> None:
        if self.opened.is_set():
            asyncio.run_coroutine_threadsafe(self.ws.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
