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

This module holds the routes; the rest of the desk: `pages` (templates, cookies, security
headers, the login decorator, shared with the review console's `console`, `dashboard` and
`listen`), `hub` (the open WebSockets), `live` (the background work: the event stream pushed to
agents, customers' cancels, the handover timers), `rasa_api` (Rasa's HTTP API), `auth`,
`lockout`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
from datetime import datetime
from typing import Any

from sanic import Request, Sanic, response
from sanic.exceptions import NotFound
from sanic.server.websockets.impl import WebsocketImplProtocol

from bot import event_stream
from bot.desk import auth, lockout
from bot.desk.complaints import complaints
from bot.desk.console import console
from bot.desk.dashboard import dashboard
from bot.desk.hub import Hub
from bot.desk.listen import listen
from bot.desk.live import follow_stream, offline_later, watch_timeouts
from bot.desk.pages import (
    HERE,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    login_required,
    page,
    security_headers,
    set_cookie,
)
from bot.desk.rasa_api import RasaAPI, RasaError
from bot.handover import service as queue
from bot.handover.models import OPEN_STATES, DeskUser, Handover
from bot.handover.pack import transcript
from bot.persistence.db import run, session_scope
from bot.ratelimit import allowed
from bot.settings import get_settings

log = logging.getLogger(__name__)


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def handover_row(h: Handover) -> dict[str, Any]:
    return {"id": h.id, "conversation_id": h.conversation_id, "customer": h.customer_name or None,
            "customer_code": h.customer_code, "language": h.language, "reason": h.reason,
            "skill": h.skill, "channel": h.channel, "state": h.state, "priority": h.priority,
            "persona": h.persona, "vip": h.vip, "created_at": _iso(h.created_at),
            "queued_at": _iso(h.queued_at), "assigned_at": _iso(h.assigned_at),
            "summary": h.summary}


def create_app(name: str = "sportello_desk") -> Sanic:
    app = Sanic(name)
    app.config.WEBSOCKET_PING_INTERVAL = 10
    app.config.WEBSOCKET_PING_TIMEOUT = 10
    app.static("/static", str(HERE / "static"), name="static")
    app.blueprint(console)  # the review console
    app.blueprint(dashboard)  # its KPIs
    app.blueprint(listen)  # what customers ask that the bot cannot do yet
    app.blueprint(complaints)  # complaints against their regulatory deadlines
    hub = Hub()
    app.ctx.hub = hub

    @app.on_response
    async def add_security_headers(request: Request, resp: response.HTTPResponse):
        security_headers(request, resp)

    @app.get("/health")
    async def health(request: Request):
        return response.json({"status": "ok"})

    @app.get("/login")
    async def login_page(request: Request):
        token = secrets.token_urlsafe(24)
        resp = page("login.html", csrf_token=token, error=None)
        set_cookie(resp, LOGIN_COOKIE, token, 900)
        return resp

    @app.post("/login")
    async def login_submit(request: Request):
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
            resp = page("login.html", status=429, csrf_token=token,
                        error=f"Too many failed sign-ins for this account: try again in "
                              f"{wait} seconds.")
            resp.headers["Retry-After"] = str(wait)
            set_cookie(resp, LOGIN_COOKIE, token, 900)
            return resp
        user_id = await run(auth.authenticate, username, form.get("password", ""))
        if user_id is None:
            token = secrets.token_urlsafe(24)
            resp = page("login.html", status=401, csrf_token=token,
                        error="Wrong username or password.")
            set_cookie(resp, LOGIN_COOKIE, token, 900)
            return resp
        await lockout.succeeded(username)
        token, _ = await run(auth.start_session, user_id)
        resp = response.redirect("/")
        set_cookie(resp, SESSION_COOKIE, token, get_settings().desk_session_hours * 3600)
        del resp.cookies[LOGIN_COOKIE]
        return resp

    @app.post("/logout")
    @login_required(api=False)
    async def logout(request: Request):
        await run(auth.end_session, request.cookies.get(SESSION_COOKIE))
        await run(queue.set_presence, request.ctx.login.user_id, "offline")
        resp = response.redirect("/login")
        del resp.cookies[SESSION_COOKIE]
        return resp

    # ---- pages ------------------------------------------------------------------------------

    @app.get("/")
    @login_required(api=False)
    async def home(request: Request):
        return response.redirect("/console" if request.ctx.login.role in ("cx_lead", "admin")
                                 else "/desk")

    @app.get("/desk")
    @login_required(api=False)
    async def desk_page(request: Request):
        return page("desk.html", login=request.ctx.login)

    # ---- API --------------------------------------------------------------------------------

    @app.get("/api/me")
    @login_required()
    async def me(request: Request):
        login = request.ctx.login
        user = await run(_user, login.user_id)
        return response.json({"username": login.username, "display_name": login.display_name,
                              "role": login.role, "skills": login.skills,
                              "languages": login.languages, "presence": user["presence"]})

    @app.post("/api/presence")
    @login_required(roles=("agent",))
    async def presence(request: Request):
        value = (request.json or {}).get("presence")
        if value not in ("online", "away", "offline"):
            return response.json({"error": "presence: online, away or offline"}, status=400)
        await run(queue.set_presence, request.ctx.login.user_id, value)
        return response.json({"presence": value})

    @app.get("/api/queue")
    @login_required()
    async def queue_api(request: Request):
        login = request.ctx.login
        waiting = await run(queue.queue_for, login.user_id)
        mine = await run(queue.assigned_to, login.user_id)
        return response.json({"queue": [handover_row(h) for h in waiting],
                              "mine": [handover_row(h) for h in mine],
                              "now": _iso(queue.now())})

    async def _mine(request: Request, hid: int) -> Handover | response.HTTPResponse:
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
    async def handover_detail(request: Request, hid: int):
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
    async def claim(request: Request, hid: int):
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
    async def agent_message(request: Request, hid: int):
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

    async def _end(request: Request, hid: int, outcome: str, action: str):
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
    async def handback(request: Request, hid: int):
        return await _end(request, hid, "handed_back", "action_handover_back")

    @app.post("/api/handovers/<hid:int>/close")
    @login_required(roles=("agent",))
    async def close(request: Request, hid: int):
        return await _end(request, hid, "resolved", "action_handover_resolved")

    @app.websocket("/ws")
    async def live(request: Request, ws: WebsocketImplProtocol):
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
                app.add_task(offline_later(app, login.user_id))

    @app.exception(NotFound)
    async def not_found(request: Request, exc: NotFound):
        return response.json({"error": "not found"}, status=404)

    @app.after_server_start
    async def start_background(app: Sanic, loop: asyncio.AbstractEventLoop):
        app.ctx.rasa = RasaAPI()
        app.ctx.last_event_id = await run(event_stream.latest_id)
        app.ctx.stopping = False
        app.add_task(follow_stream(app))
        app.add_task(watch_timeouts(app))

    @app.before_server_stop
    async def stop_background(app: Sanic, loop: asyncio.AbstractEventLoop):
        app.ctx.stopping = True
        await app.ctx.rasa.close()

    return app


def _user(user_id: int) -> dict:
    with session_scope() as db:
        u = db.get(DeskUser, user_id)
        return {"presence": u.presence if u else "offline"}


async def _live_lines(app: Sanic, h: Handover) -> list[dict]:
    """The conversation since the handover, from the tracker (for a page opened later)."""
    try:
        tracker = await app.ctx.rasa.tracker(h.conversation_id)
    except RasaError:
        return []
    start = h.created_at.timestamp()
    return transcript([e for e in tracker.get("events", []) if (e.get("timestamp") or 0) >= start])


def serve(host: str | None = None, port: int | None = None) -> None:
    """The desk, on DESK_HOST (loopback unless configured) and the port of DESK_URL."""
    from urllib.parse import urlparse

    from bot.logmask import install
    from bot.persistence.db import migrate
    from bot.production import enforce

    install()
    migrate()
    enforce("desk")
    port = port or urlparse(get_settings().desk_url).port or 5006
    app = create_app()
    app.run(host=host or get_settings().desk_host, port=port, access_log=False, motd=False,
            workers=1)
