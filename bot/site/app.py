"""The demo site of Luce Nord Energia (Sanic): the page with the chat widget, and a demo login.

- `GET /` (Italian) and `GET /en` (English): the page from `web/templates/page.html`; the
  widget (rasa-webchat, from npm, in `web/node_modules`) talks to the Rasa server's socket.io
  channel at `RASA_URL`.
- `POST /demo-login` `{"customer_code": "C1000001"}`: a signed customer token
  (`bot.tokens.make_customer_token`) for one of the demo customers (`bot.crm.seed.DEMO`) and
  nobody else. This is a demo: a real site signs its own customers in and issues the token.
- `GET /static/…` (`web/static`), `GET /vendor/rasa-webchat.js`, `GET /health`.
"""

from __future__ import annotations

import logging
from urllib.parse import urlparse

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sanic import Request, Sanic, response
from sanic.exceptions import NotFound
from sqlalchemy import select

from bot.persistence.db import run
from bot.settings import ROOT, get_settings

log = logging.getLogger(__name__)
WEB = ROOT / "web"
WEBCHAT_JS = WEB / "node_modules" / "rasa-webchat" / "lib" / "index.js"
TOKEN_MINUTES = 120

templates = Environment(loader=FileSystemLoader(WEB / "templates"),
                        autoescape=select_autoescape(["html"]))


def demo_customers() -> list[dict]:
    """The named demo customers, as the login menu shows them (code order)."""
    from bot.crm.models import Customer
    from bot.crm.seed import DEMO
    from bot.persistence.db import session_scope

    with session_scope() as db:
        rows = db.execute(select(Customer.customer_code, Customer.first_name, Customer.last_name)
                          .where(Customer.customer_code.in_(list(DEMO)))
                          .order_by(Customer.customer_code)).all()
    return [{"code": code, "name": f"{first} {last}".strip(), "about": DEMO[code]}
            for code, first, last in rows]


def _socket_origin(rasa_url: str) -> str:
    u = urlparse(rasa_url)
    ws = "wss" if u.scheme == "https" else "ws"
    return f"{rasa_url.rstrip('/')} {ws}://{u.netloc}"


# Files that are the same for everybody keep their caching; everything else is no-store.
CACHEABLE_PREFIXES = ("/static/", "/vendor/")


def _secure_headers(resp: response.HTTPResponse, path: str = "") -> response.HTTPResponse:
    """The security headers of every response of the site (pages, API, static, errors): the
    widget talks to the Rasa server's socket.io (polling and WebSocket) at `RASA_URL`.
    rasa-webchat injects its stylesheet at run time, hence 'unsafe-inline' for styles only."""
    resp.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self'; "
        f"connect-src 'self' {_socket_origin(get_settings().rasa_url)}; "
        "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    if not (path.startswith(CACHEABLE_PREFIXES) and resp.status < 400):
        resp.headers["Cache-Control"] = "no-store"
    return resp


def create_app() -> Sanic:
    app = Sanic("sportello-site")
    app.config.KEEP_ALIVE_TIMEOUT = 5

    async def page(lang: str) -> response.HTTPResponse:
        customers = await run(demo_customers)
        html = templates.get_template("page.html").render(
            lang=lang, customers=customers, rasa_url=get_settings().rasa_url)
        return response.html(html)  # headers: secure_headers below

    @app.get("/")
    async def italian(request: Request):
        return await page("it")

    @app.get("/en")
    async def english(request: Request):
        return await page("en")

    @app.get("/health")
    async def health(request: Request):
        return response.json({"status": "ok"})

    @app.get("/vendor/rasa-webchat.js")
    async def webchat(request: Request):
        if not WEBCHAT_JS.exists():
            return response.text("rasa-webchat is not installed: run `make setup` (npm ci in web/)",
                                 status=503)
        return await response.file(WEBCHAT_JS, mime_type="application/javascript")

    @app.post("/demo-login")
    async def demo_login(request: Request):
        from bot.crm.seed import DEMO
        from bot.ratelimit import allowed
        from bot.tokens import make_customer_token

        if not get_settings().demo:  # the demo sign-in exists only with the demo data
            return response.json({"error": "not found"}, status=404)
        if not await allowed("site-login", request.remote_addr or request.ip):
            return response.json({"error": "too many attempts; wait a minute"}, status=429)

        try:
            body = request.json
        except Exception:  # Sanic raises on a body that is not JSON
            body = None
        code = body.get("customer_code") if isinstance(body, dict) else None
        if not isinstance(code, str):
            return response.json({"error": "customer_code required"}, status=400)
        if code not in DEMO:
            return response.json({"error": "only the demo customers can sign in here"},
                                 status=403)
        customer = next((c for c in await run(demo_customers) if c["code"] == code), None)
        if customer is None:
            return response.json({"error": "demo data not loaded"}, status=404)
        return response.json({"customer_code": code, "name": customer["name"],
                              "token": make_customer_token(code, TOKEN_MINUTES)})

    app.static("/static", str(WEB / "static"), name="static")

    @app.exception(NotFound)
    async def not_found(request: Request, exc: NotFound):
        return response.json({"error": "not found"}, status=404)

    @app.on_response
    async def secure_headers(request: Request, resp: response.HTTPResponse):
        _secure_headers(resp, request.path)

    return app


def serve(host: str = "127.0.0.1", port: int | None = None) -> None:
    from bot.logmask import install
    from bot.persistence.db import migrate
    from bot.production import enforce

    install()
    migrate()
    enforce("site")
    port = port or urlparse(get_settings().site_url).port or 5007
    create_app().run(host=host, port=port, access_log=False, motd=False, workers=1)
