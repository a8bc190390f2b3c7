"""The action server (`python -m bot actions`): rasa_sdk's app, private and authenticated.

rasa_sdk 3.6 listens on every interface, allows any CORS origin, runs any action for anyone
who can reach it, and echoes the request body in its error responses. The actions trust the
tracker they are sent (slots such as `verified` and `customer_code`), so only the Rasa server
may call them: this wrapper listens on `ACTION_SERVER_HOST` (127.0.0.1 unless configured),
requires `Authorization: Bearer <ACTION_SERVER_TOKEN>` on every route but `/health` (Rasa's
`action_endpoint` sends it, see endpoints*.yml), allows no CORS, and answers errors without
echoing anything. An action that fails answers the customer with an apology (never a silent
turn).

Rasa sends the action server only the tracker (`enable_selective_domain` in endpoints*.yml): the
domain, the same for every call and most of each call's size, is read here once from the
project's `domain/` (the files the running model was trained from: it is named after their hash,
bot/runner.py) and given to every action as Rasa would have sent it.
"""

from __future__ import annotations

import hmac
import logging
from functools import lru_cache
from typing import Any

from sanic import Sanic, response
from sanic.request import Request

from bot.crm.card import TURN
from bot.settings import ROOT, get_settings

log = logging.getLogger(__name__)
OPEN_PATHS = {"/health"}
# What a failed action says instead of leaving the customer's message without a reply: no event
# (nothing the action half-did is kept in the conversation), an apology with what to do.
APOLOGY = {"events": [], "responses": [{"response": "utter_technical_problem"}]}


def authorised(request: Request, token: str) -> bool:
    """True when the request carries the action server's bearer token."""
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode(), token.encode())


@lru_cache(maxsize=1)
def model_domain() -> dict[str, Any]:
    """The domain as Rasa's action calls carry it (`Domain.as_dict()`), read once."""
    from rasa.shared.core.domain import Domain

    return Domain.load(str(ROOT / "domain")).as_dict()


def with_domain(body: Any) -> None:
    """Give an action call without a domain the model's domain, in place."""
    if isinstance(body, dict) and "domain" not in body:
        body["domain"] = model_domain()


def turn_of(body: Any) -> tuple[str, float] | None:
    """(conversation id, timestamp of its latest user message) of an action call: the turn the
    identity card is kept for (bot/crm/card.py)."""
    tracker = body.get("tracker") if isinstance(body, dict) else None
    if not isinstance(tracker, dict) or not isinstance(tracker.get("sender_id"), str):
        return None
    events = tracker.get("events")
    for event in reversed(events if isinstance(events, list) else []):
        if isinstance(event, dict) and event.get("event") == "user":
            stamp = event.get("timestamp")
            return (tracker["sender_id"], float(stamp)) if isinstance(stamp, (int, float)) else None
    return None


def is_action_call(request: Request) -> bool:
    """Whether the body is an action call as Rasa makes it (an action name and a tracker)."""
    try:
        body = request.json
    except Exception:
        return False
    return (isinstance(body, dict) and isinstance(body.get("next_action"), str)
            and isinstance(body.get("tracker"), dict)
            and isinstance(body["tracker"].get("sender_id"), str))


def create_app(package: str = "actions", token: str | None = None) -> Sanic:
    from rasa_sdk.endpoint import create_app as sdk_app

    token = token if token is not None else get_settings().action_server_token
    if not token:
        raise SystemExit("ACTION_SERVER_TOKEN is empty: the action server would be open")
    app = sdk_app(package, cors_origins=[])

    @app.on_request
    async def require_token(request: Request):
        if request.path in OPEN_PATHS:
            return None
        if not authorised(request, token):
            return response.json({"error": "unauthorised"}, status=401)
        if request.path == "/webhook" and request.method == "POST":
            try:
                body = request.json  # parsed once: rasa_sdk's handler reads the same object
            except Exception:
                return None  # rasa_sdk answers a malformed body itself
            with_domain(body)
            TURN.set(turn_of(body))
        return None

    @app.exception(Exception)
    async def error(request: Request, exception: Exception):
        status = getattr(exception, "status_code", 500)
        if status >= 500:  # the traceback for the operator; nothing of it for the caller
            log.error("action server error on %s: %s", request.path, type(exception).__name__,
                      exc_info=exception)
            if request.path == "/webhook":
                # a failed action still answers the customer; a malformed call is refused
                return response.json(APOLOGY) if is_action_call(request) else response.json(
                    {"error": "request failed"}, status=400)
        return response.json({"error": "request failed"}, status=status)

    return app


def serve(port: int | None = None, host: str | None = None) -> None:
    from urllib.parse import urlparse

    from rasa_sdk import utils
    from rasa_sdk.plugin import plugin_manager

    from bot.logmask import install
    from bot.production import enforce

    utils.configure_colored_logging("INFO")
    utils.update_sanic_log_level()
    install()
    enforce("action server")
    s = get_settings()
    port = port or urlparse(s.action_server_url).port or 5055
    model_domain()  # read before the first call, not during it
    app = create_app()
    plugin_manager().hook.attach_sanic_app_extensions(app=app)
    app.run(host or s.action_server_host, port, workers=1, access_log=False, motd=False)
