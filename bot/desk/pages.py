"""What every route of the desk app shares (the desk's own routes in `bot.desk.app`, the review
console's in `bot.desk.console`, `bot.desk.dashboard` and `bot.desk.listen`): the page
templates, the cookies, the security headers of every response, and the login decorator.

`login_required` lets through a signed-in desk user with one of the given roles
(`request.ctx.login`) and, on every state-changing request, only with the session's CSRF token
(header `X-CSRF-Token` or form field `csrf_token`).
"""

from __future__ import annotations

from functools import wraps
from pathlib import Path
from typing import Awaitable, Callable

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sanic import Request, response

from bot.desk import auth
from bot.persistence.db import run
from bot.settings import get_settings

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "desk_session"
LOGIN_COOKIE = "desk_login_csrf"
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


def page(name: str, status: int = 200, **context) -> response.HTTPResponse:
    """The template `name` rendered with `context`."""
    return response.html(templates.get_template(name).render(**context), status=status)


def int_arg(request: Request, name: str, default: int) -> int:
    """A whole-number query argument (a page, a page size), `default` when absent; ValueError
    with a message for the user otherwise."""
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ValueError(f"{name}: a whole number, got {raw!r}")
    return int(raw)


def set_cookie(resp: response.HTTPResponse, name: str, value: str, max_age: int) -> None:
    """An `HttpOnly`, `SameSite=Strict` cookie for the whole site, `Secure` when the
    `desk_cookie_secure` setting is on."""
    resp.cookies[name] = value
    c = resp.cookies[name]
    c["httponly"] = True
    c["samesite"] = "Strict"
    c["path"] = "/"
    c["max-age"] = max_age
    if get_settings().desk_cookie_secure:
        c["secure"] = True


def security_headers(request: Request, resp: response.HTTPResponse) -> None:
    """CSP, no framing, no sniffing, no referrer; `Cache-Control: no-store` on everything but
    the static files (issue 10, item 12)."""
    for name, value in SECURITY_HEADERS.items():
        resp.headers[name] = value
    if not (request.path.startswith(CACHEABLE_PREFIXES) and resp.status < 400):
        resp.headers["Cache-Control"] = "no-store"


def login_required(roles: tuple[str, ...] = ("agent", "cx_lead", "admin"),
                   api: bool = True) -> Callable:
    """A signed-in desk user with one of `roles` (`request.ctx.login`); the session's CSRF token
    on every state-changing request. Strangers get 401 (API) or the login page."""
    def decorate(handler: Callable[..., Awaitable[response.HTTPResponse]]):
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
                return page("forbidden.html", status=403, role=login.role)
            if request.method not in ("GET", "HEAD", "OPTIONS"):
                given = request.headers.get("x-csrf-token") or (
                    request.form.get("csrf_token") if request.form else None)
                if not auth.csrf_ok(login.csrf_token, given):
                    return response.json({"error": "missing or wrong CSRF token"}, status=403)
            request.ctx.login = login
            return await handler(request, *args, **kwargs)
        return wrapped
    return decorate
