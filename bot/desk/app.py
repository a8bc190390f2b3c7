"""The desk web app (Sanic): login, the agents' queue and live conversations.

Every route but `/login`, `/health` and `/static` needs a login; every state-changing request
needs the session's CSRF token (header `X-CSRF-Token` or form field `csrf_token`); the login form
has its own CSRF token bound to a short-lived cookie. Live updates go to the browser over a
WebSocket: the queue (new arrivals), the customer's messages, conversations taken away.

An agent sees a handover (its context pack, transcript and live lines) and writes in it only
while it is assigned to them: once it is closed, abandoned, fallen back or with another agent,
the desk refuses it and pushes none of its lines (the review console keeps the masked log for
the CX leads). Every response carries the security headers of `security_headers`; sign-in
failures are counted per address and username (`bot.ratelimit`) and per account
(`bot.desk.lockout`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
from datetime import datetime, timezone
from functools import wraps
from pathlib import Path
from typing import Any, Callable

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sanic import Request, Sanic, response
from sanic.exceptions import NotFound

from bot import event_stream
from bot.crm.service import run
from bot.desk import auth, lockout
from bot.desk.rasa_api import RasaAPI, RasaError
from bot.handover import service as queue
from bot.handover.models import OPEN_STATES, Handover
from bot.ratelimit import allowed
from bot.settings import get_settings
from bot.stopwords import is_stop_phrase

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "desk_session"
LOGIN_COOKIE = "desk_login_csrf"
PUBLIC = {"/login", "/health"}
POLL_SECONDS = 0.1
CHECK_SECONDS = 2.0
OFFLINE_GRACE_SECONDS = 5.0
# Every response of the desk and the console (pages, API, static files, errors, the login):
# nothing inline (the pages load their scripts and styles from /static), no framing, no plugins.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY",
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
# Files that are the same for everybody keep their own caching; everything else is no-store.
CACHEABLE_PREFIXES = ("/static/", "/console/vendor/")

templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                        autoescape=select_autoescape(["html"]))


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def handover_row(h: Handover) -> dict[str, Any]:
    return {"id": h.id, "conversation_id": h.conversation_id, "customer": h.customer_name or None,
            "customer_code": h.customer_code, "language": h.language, "reason": h.reason,
            "skill": h.skill, "channel": h.channel, "state": h.state, "priority": h.priority,
            "persona": h.persona, "vip": h.vip, "created_at": _iso(h.created_at),
            "queued_at": _iso(h.queued_at), "assigned_at": _iso(h.assigned_at),
            "summary": h.summary}


def _cookie(resp, name: str, value: str, max_age: int) -> None:
    resp.cookies[name] = value
    c = resp.cookies[name]
    c["httponly"] = True
    c["samesite"] = "Strict"
    c["path"] = "/"
    c["max-age"] = max_age
    if get_settings().desk_cookie_secure:
        c["secure"] = True


def _page(name: str, status: int = 200, **context) -> response.HTTPResponse:
    return response.html(templates.get_template(name).render(**context), status=status)


def security_headers(request: Request, resp: response.HTTPResponse) -> None:
    """CSP, no framing, no sniffing, no referrer; `Cache-Control: no-store` on everything but
    the static files (issue 10, item 12)."""
    for name, value in SECURITY_HEADERS.items():
        resp.headers[name] = value
    if not (request.path.startswith(CACHEABLE_PREFIXES) and resp.status < 400):
        resp.headers["Cache-Control"] = "no-store"


class Hub:
    """Open WebSockets per desk user, and what is pushed to them."""

    def __init__(self) -> None:
        self.sockets: dict[int, set] = {}

    def add(self, user_id: int, ws) -> None:
        self.sockets.setdefault(user_id, set()).add(ws)

    def remove(self, user_id: int, ws) -> bool:
        """True when that was the user's last open page."""
        self.sockets.get(user_id, set()).discard(ws)
        return not self.sockets.get(user_id)

    async def send(self, user_id: int, message: dict) -> None:
        data = json.dumps(message, default=str)
        for ws in list(self.sockets.get(user_id, ())):
            try:
                await ws.send(data)
            except Exception:  # a closed page; its handler removes it
                pass

    async def broadcast(self, message: dict) -> None:
        for user_id in list(self.sockets):
            await self.send(user_id, message)


def login_required(roles: tuple[str, ...] = ("agent", "cx_lead", "admin"),
                   api: bool = True) -> Callable:
    """A signed-in desk user with one of `roles` (`request.ctx.login`); the session's CSRF token
    on every state-changing request. Strangers get 401 (API) or the login page."""
    def decorate(handler):
        @wraps(handler)
        async def wrapped(request: Request, *args, **kwargs):
            login = await run(auth.session_login, request.cookies.get(SESSION_COOKIE))
            if login is None:
                if api:
                    return response.json({"error": "login required"}, status=401)
                return response.redirect("/login")
            if login.role not in roles:
                if api:
                    return response.json({"error": "not allowed for your role"}, status=403)
                return _page("forbidden.html", status=403, role=login.role)
            if request.method not in ("GET", "HEAD", "OPTIONS"):
                given = request.headers.get("x-csrf-token") or (
                    request.form.get("csrf_token") if request.form else None)
                if not auth.csrf_ok(login.csrf_token, given):
                    return response.json({"error": "missing or wrong CSRF token"}, status=403)
            request.ctx.login = login
            return await handler(request, *args, **kwargs)
        return wrapped
    return decorate


def create_app(name: str = "sportello_desk") -> Sanic:
    app = Sanic(name)
    app.config.WEBSOCKET_PING_INTERVAL = 10
    app.config.WEBSOCKET_PING_TIMEOUT = 10
    app.static("/static", str(HERE / "static"), name="static")
    from bot.desk.console import console; app.blueprint(console)  # noqa: E702 (review console)
    from bot.desk.dashboard import dashboard; app.blueprint(dashboard)  # noqa: E702 (KPIs)
    hub = Hub()
    app.ctx.hub = hub

    @app.on_response
    async def add_security_headers(request, resp):
        security_headers(request, resp)

    @app.get("/health")
    async def health(request):
        return response.json({"status": "ok"})

    @app.get("/login")
    async def login_page(request):
        token = secrets.token_urlsafe(24)
        resp = _page("login.html", csrf_token=token, error=None)
        _cookie(resp, LOGIN_COOKIE, token, 900)
        return resp

    @app.post("/login")
    async def login_submit(request):
        form = request.form or {}
        # Password guessing: a limited number of attempts per address and username.
        if not await allowed("desk-login", f"{request.remote_addr or request.ip}:"
                                           f"{str(form.get('username', ''))[:64]}"):
            return response.json({"error": "too many attempts; wait a minute"}, status=429)
        expected = request.cookies.get(LOGIN_COOKIE)
        if not expected or not auth.csrf_ok(expected, form.get("csrf_token")):
            return response.json({"error": "missing or wrong CSRF token; reload the page"},
                                 status=403)
        username = str(form.get("username", ""))
        # Guessing from many addresses: a growing lock per account (the same answer whether
        # the account exists or not, and whatever the password).
        locked = await lockout.attempt(username)
        if locked:
            wait = max(1, math.ceil(locked))
            token = secrets.token_urlsafe(24)
            resp = _page("login.html", status=429, csrf_token=token,
                         error=f"Too many failed sign-ins for this account: try again in "
                               f"{wait} seconds.")
            resp.headers["Retry-After"] = str(wait)
            _cookie(resp, LOGIN_COOKIE, token, 900)
            return resp
        user_id = await run(auth.authenticate, username, form.get("password", ""))
        if user_id is None:
            token = secrets.token_urlsafe(24)
            resp = _page("login.html", status=401, csrf_token=token,
                         error="Wrong username or password.")
            _cookie(resp, LOGIN_COOKIE, token, 900)
            return resp
        await lockout.succeeded(username)
        token, _ = await run(auth.start_session, user_id)
        resp = response.redirect("/")
        _cookie(resp, SESSION_COOKIE, token, get_settings().desk_session_hours * 3600)
        del resp.cookies[LOGIN_COOKIE]
        return resp

    @app.post("/logout")
    @login_required(api=False)
    async def logout(request):
        await run(auth.end_session, request.cookies.get(SESSION_COOKIE))
        await run(queue.set_presence, request.ctx.login.user_id, "offline")
        resp = response.redirect("/login")
        del resp.cookies[SESSION_COOKIE]
        return resp

    # ---- pages ------------------------------------------------------------------------------

    @app.get("/")
    @login_required(api=False)
    async def home(request):
        return response.redirect("/console" if request.ctx.login.role in ("cx_lead", "admin")
                                 else "/desk")

    @app.get("/desk")
    @login_required(api=False)
    async def desk_page(request):
        return _page("desk.html", login=request.ctx.login)

    # ---- API --------------------------------------------------------------------------------

    @app.get("/api/me")
    @login_required()
    async def me(request):
        login = request.ctx.login
        user = await run(_user, login.user_id)
        return response.json({"username": login.username, "display_name": login.display_name,
                              "role": login.role, "skills": login.skills,
                              "languages": login.languages, "presence": user["presence"]})

    @app.post("/api/presence")
    @login_required(roles=("agent",))
    async def presence(request):
        value = (request.json or {}).get("presence")
        if value not in ("online", "away", "offline"):
            return response.json({"error": "presence: online, away or offline"}, status=400)
        await run(queue.set_presence, request.ctx.login.user_id, value)
        return response.json({"presence": value})

    @app.get("/api/queue")
    @login_required()
    async def queue_api(request):
        login = request.ctx.login
        waiting = await run(queue.queue_for, login.user_id)
        mine = await run(queue.assigned_to, login.user_id)
        return response.json({"queue": [handover_row(h) for h in waiting],
                              "mine": [handover_row(h) for h in mine],
                              "now": _iso(queue.now())})

    async def _mine(request, hid: int) -> Handover | response.HTTPResponse:
        """The handover, while the signed-in user may see it: an agent while it is assigned to
        them, an admin while it is open. Its view ends when the handover ends."""
        h = await run(queue.get, hid)
        if h is None:
            return response.json({"error": "no such handover"}, status=404)
        login = request.ctx.login
        if h.state not in OPEN_STATES:
            return response.json({"error": "this conversation has ended; it is no longer on "
                                           "the desk"}, status=403)
        if login.role != "admin" and (h.state != "assigned" or h.agent_id != login.user_id):
            return response.json({"error": "this conversation is not assigned to you"},
                                 status=403)
        return h

    @app.get("/api/handovers/<hid:int>")
    @login_required(roles=("agent", "admin"))
    async def handover_detail(request, hid: int):
        h = await _mine(request, hid)
        if not isinstance(h, Handover):
            return h
        pack = json.loads(h.context_pack or "{}")
        since = [line for line in await _live_lines(app, h)]
        still = await _mine(request, hid)  # it may have ended while the tracker was read
        if not isinstance(still, Handover):
            return still
        return response.json({"handover": handover_row(h), "pack": pack, "live": since,
                              "transitions": [{"state": t.state, "at": _iso(t.at),
                                               "note": t.note} for t in h.transitions]})

    @app.post("/api/handovers/<hid:int>/claim")
    @login_required(roles=("agent",))
    async def claim(request, hid: int):
        login = request.ctx.login
        active = await run(queue.assigned_to, login.user_id)
        if len(active) >= get_settings().agent_max_chats:
            return response.json({"error": "you already have the maximum number of chats"},
                                 status=409)
        try:
            h = await run(queue.claim, hid, login.user_id)
        except queue.Conflict as exc:
            return response.json({"error": str(exc)}, status=409)
        await hub.broadcast({"type": "queue"})
        return response.json({"handover": handover_row(h)})

    @app.post("/api/handovers/<hid:int>/messages")
    @login_required(roles=("agent",))
    async def agent_message(request, hid: int):
        text = str((request.json or {}).get("text") or "").strip()
        if not text:
            return response.json({"error": "empty message"}, status=400)
        if len(text) > 4000:
            return response.json({"error": "message longer than 4000 characters"}, status=400)
        h = await _mine(request, hid)
        if not isinstance(h, Handover):
            return h
        login = request.ctx.login
        try:
            await run(queue.note_agent_message, hid, login.user_id)
            await app.ctx.rasa.send_agent_message(h.conversation_id, text, login.display_name,
                                                  login.username)
        except queue.Conflict as exc:
            return response.json({"error": str(exc)}, status=409)
        except RasaError as exc:
            log.error("agent message not delivered: %s", exc)
            return response.json({"error": "the message could not be delivered; try again"},
                                 status=502)
        return response.json({"sent": True})

    async def _end(request, hid: int, outcome: str, action: str):
        h = await _mine(request, hid)
        if not isinstance(h, Handover):
            return h
        try:
            await run(queue.finish, hid, "closed", outcome, request.ctx.login.user_id)
        except queue.Conflict as exc:
            return response.json({"error": str(exc)}, status=409)
        try:
            await app.ctx.rasa.resume_with(h.conversation_id, action)
        except RasaError as exc:
            log.error("could not hand conversation %s back: %s", h.id, exc)
            return response.json({"error": "closed, but the bot could not be told; "
                                           "it resumes with the customer's next message"},
                                 status=502)
        await hub.broadcast({"type": "queue"})
        return response.json({"closed": True, "outcome": outcome})

    @app.post("/api/handovers/<hid:int>/handback")
    @login_required(roles=("agent",))
    async def handback(request, hid: int):
        return await _end(request, hid, "handed_back", "action_handover_back")

    @app.post("/api/handovers/<hid:int>/close")
    @login_required(roles=("agent",))
    async def close(request, hid: int):
        return await _end(request, hid, "resolved", "action_handover_resolved")

    @app.websocket("/ws")
    async def live(request, ws):
        login = await run(auth.session_login, request.cookies.get(SESSION_COOKIE))
        origin = request.headers.get("origin")
        host = request.headers.get("host")
        if login is None or (origin and origin.split("://", 1)[-1] != host):
            await ws.close(code=4401, reason="login required")
            return
        hub.add(login.user_id, ws)
        try:
            await ws.send(json.dumps({"type": "hello", "user": login.username}))
            while True:
                message = await ws.recv()
                if message is None:
                    break
        finally:
            if hub.remove(login.user_id, ws) and login.role == "agent":
                app.add_task(_offline_later(app, login.user_id))

    @app.exception(NotFound)
    async def not_found(request, exc):
        return response.json({"error": "not found"}, status=404)

    @app.after_server_start
    async def start_background(app, loop):
        app.ctx.rasa = RasaAPI()
        app.ctx.last_event_id = await run(event_stream.latest_id)
        app.ctx.stopping = False
        app.add_task(_follow_stream(app))
        app.add_task(_watch_timeouts(app))

    @app.before_server_stop
    async def stop_background(app, loop):
        app.ctx.stopping = True
        await app.ctx.rasa.close()

    return app


def _user(user_id: int) -> dict:
    from bot.crm.db import session_scope
    from bot.handover.models import DeskUser

    with session_scope() as db:
        u = db.get(DeskUser, user_id)
        return {"presence": u.presence if u else "offline"}


async def _offline_later(app: Sanic, user_id: int) -> None:
    """The agent's browser went away: offline, unless a page comes back within a few seconds."""
    await asyncio.sleep(OFFLINE_GRACE_SECONDS)
    if not app.ctx.hub.sockets.get(user_id):
        await run(queue.set_presence, user_id, "offline")


async def _live_lines(app: Sanic, h: Handover) -> list[dict]:
    """The conversation since the handover, from the tracker (for a page opened later)."""
    from bot.handover.pack import transcript

    try:
        tracker = await app.ctx.rasa.tracker(h.conversation_id)
    except RasaError:
        return []
    start = h.created_at.timestamp()
    return transcript([e for e in tracker.get("events", []) if (e.get("timestamp") or 0) >= start])


def _line(event: dict) -> dict | None:
    from bot.handover.pack import transcript

    lines = transcript([event])
    return lines[0] if lines else None


async def _follow_stream(app: Sanic) -> None:
    hub: Hub = app.ctx.hub
    signature = None
    while not app.ctx.stopping:
        try:
            events = await run(event_stream.read_after, app.ctx.last_event_id)
            if events:
                app.ctx.last_event_id = events[-1].id
                await _on_events(app, events)
            current = await run(_queue_signature)
            if current != signature:
                if signature is not None:
                    await hub.broadcast({"type": "queue"})
                signature = current
        except Exception:  # the stream must keep flowing
            log.exception("event stream")
            await asyncio.sleep(1)
        await asyncio.sleep(POLL_SECONDS)


def _queue_signature() -> tuple:
    from sqlalchemy import select

    from bot.crm.db import session_scope
    from bot.handover.models import OPEN_STATES

    with session_scope() as db:
        return tuple(db.execute(select(Handover.id, Handover.state, Handover.agent_id)
                                .where(Handover.state.in_(OPEN_STATES))
                                .order_by(Handover.id)).all())


async def _on_events(app: Sanic, events: list[event_stream.StreamEvent]) -> None:
    """Customers' and agents' messages of conversations with a person: pushed to the agent;
    a customer who cancels while waiting goes back to the bot. One query per batch."""
    relevant = [e for e in events if e.data.get("event") in ("user", "bot")]
    handovers = await run(queue.open_by_conversation, [e.sender_id for e in relevant])
    seen: dict[int, datetime] = {}
    pushes: list[tuple[Handover, dict]] = []
    for e in relevant:
        h = handovers.get(e.sender_id)
        if h is None:
            continue
        when = datetime.fromtimestamp(e.data.get("timestamp") or 0, timezone.utc)
        if when < h.created_at:
            continue
        if e.data.get("event") == "user":
            seen[h.id] = max(when, seen.get(h.id, when))
            intent = ((e.data.get("parse_data") or {}).get("intent") or {}).get("name")
            if h.state == "queued" and (intent in ("deny", "cancel")
                                        or is_stop_phrase(e.data.get("text") or "")):
                await _give_back(app, h, "abandoned", "cancelled by the customer",
                                 "action_handover_cancelled")
                handovers.pop(e.sender_id, None)
                continue
        line = _line(e.data)
        if line and h.state == "assigned" and h.agent_id:
            pushes.append((h, line))
    await run(queue.note_customer_messages, seen)
    if pushes:
        # Only to the agent who has the handover now: not once it has ended or gone to
        # someone else while this batch was read.
        current = await run(_assigned_agents, sorted({h.id for h, _ in pushes}))
        for h, line in pushes:
            if current.get(h.id) == h.agent_id:
                await app.ctx.hub.send(h.agent_id,
                                       {"type": "message", "handover_id": h.id, **line})


def _assigned_agents(handover_ids: list[int]) -> dict[int, int]:
    """Handover id -> its agent, for those of `handover_ids` assigned right now."""
    from sqlalchemy import select

    from bot.crm.db import session_scope

    with session_scope() as db:
        return dict(db.execute(select(Handover.id, Handover.agent_id).where(
            Handover.id.in_(handover_ids), Handover.state == "assigned")).all())


async def _give_back(app: Sanic, h: Handover, state: str, outcome: str, action: str) -> None:
    try:
        await run(queue.finish, h.id, state, outcome)
    except queue.Conflict:
        return
    try:
        await app.ctx.rasa.resume_with(h.conversation_id, action)
    except RasaError as exc:
        log.error("could not resume conversation of handover %s: %s", h.id, exc)
    await app.ctx.hub.broadcast({"type": "queue"})


async def _watch_timeouts(app: Sanic) -> None:
    s = get_settings()
    while not app.ctx.stopping:
        try:
            for h in await run(queue.waiting_too_long, s.handover_max_wait_seconds):
                await _give_back(app, h, "fallback", "maximum wait reached",
                                 "action_handover_timeout")
            for h in await run(queue.unanswered, s.agent_reply_timeout_seconds):
                agent = h.agent_id
                try:
                    await run(queue.requeue, h.id, "agent did not answer in time")
                except queue.Conflict:
                    continue
                if agent:
                    await app.ctx.hub.send(agent, {"type": "taken_away", "handover_id": h.id,
                                                   "why": "you did not answer in time"})
                await app.ctx.hub.broadcast({"type": "queue"})
        except Exception:
            log.exception("timeouts")
        await asyncio.sleep(CHECK_SECONDS)


def serve(host: str = "127.0.0.1", port: int | None = None) -> None:
    from urllib.parse import urlparse

    from bot.crm.db import migrate
    from bot.logmask import install
    from bot.production import enforce

    install()
    migrate()
    enforce("desk")
    port = port or urlparse(get_settings().desk_url).port or 5006
    app = create_app()
    app.run(host=host, port=port, access_log=False, motd=False, workers=1)
