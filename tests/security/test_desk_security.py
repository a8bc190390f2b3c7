"""Issue 10, the desk's side, attacked over HTTP against the real stack (Rasa, action server,
desk, demo site):

- item 6: a handover whose conversation id holds `/`, `?`, `#` or `..` must not let the agent's
  reply (or the hand-back) land in another customer's conversation, nor show that conversation;
- item 10: an agent's view of a handover ends when the handover ends or goes to someone else:
  no transcript, pack or live lines, no posting, no WebSocket pushes;
- item 11: a CSV export never holds a piece that a spreadsheet splitting on `;` or `,` would run
  as a formula;
- item 12: security headers on every response of the desk and the demo site; a per-account
  backoff of the desk's sign-in, whatever the address; no reveal of personal data without a
  real reason.
"""

from __future__ import annotations

import csv
import io
import re
import time
import uuid
from datetime import datetime, timezone

import httpx
import pytest
from sqlalchemy import select, update

from bot.handover.models import OPEN_STATES, DeskUser, Handover
from bot.persistence.db import session_scope
from tests.integration.desk_client import Agent, DeskSocket

pytestmark = pytest.mark.integration


def _reset() -> None:
    """Nobody online, nobody waiting, no agent busy."""
    with session_scope() as db:
        db.execute(update(DeskUser).values(presence="offline"))
        db.execute(update(Handover).where(Handover.state.in_(OPEN_STATES))
                   .values(state="abandoned", outcome="test cleanup"))


@pytest.fixture
def desk(stack):
    _reset()
    yield stack
    _reset()


def _handover(conversation_id: str, skill: str = "billing", language: str = "it") -> int:
    """A queued handover, as the handover action would write it (the channels refuse unsafe
    sender ids, so a hostile one can only be planted in the table)."""
    from bot.handover import service

    return service.enqueue(
        conversation_id=conversation_id, channel="web", input_channel="rest",
        language=language, reason="request_human", skill=skill, customer_code=None,
        customer_name="", persona=None, vip=False, summary="security test",
        context_pack={"summary": "security test", "transcript": []}, agents=1).handover_id


def _escaped(conversation_id: str) -> str:
    """The id as one path segment, escaped exactly as the desk escapes it: Sanic matches and
    hands Rasa the raw segment, so `=` and `%3D` name two different conversations."""
    from bot.desk.rasa_api import segment

    return segment(conversation_id)


def _tracker(stack, conversation_id: str) -> dict:
    """A conversation's tracker, read from Rasa's HTTP API with the stack's token."""
    r = httpx.get(f"{stack.rasa_url}/conversations/{_escaped(conversation_id)}/tracker",
                  params={"token": stack.env["RASA_TOKEN"]}, timeout=30)
    r.raise_for_status()
    return r.json()


def _texts(tracker: dict) -> list[str]:
    return [e.get("text") or "" for e in tracker.get("events") or []]


def _refused(r: httpx.Response) -> None:
    assert r.status_code in (403, 404), (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"}, body  # nothing of the conversation


# ---- item 6: a conversation id is one path segment -------------------------------------------

ATTACKS = {
    "query": "{victim}/tracker/events?x=",
    "fragment": "{victim}/tracker/events#",
    "dot-dot": "x/../{victim}",
    "dots-only": "..",
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_hostile_conversation_id_reaches_only_its_own_conversation(desk, attack):
    victim = f"victim-{uuid.uuid4().hex[:12]}"
    desk.talk(victim, "ciao")
    before = _tracker(desk, victim)["events"]
    assert before, "the victim's conversation exists"
    hostile = ATTACKS[attack].format(victim=victim)
    hid = _handover(hostile)

    agent = Agent(desk.desk_url, "giulia")
    assert agent.post(f"/api/handovers/{hid}/claim").status_code == 200
    marker = f"agent reply {uuid.uuid4().hex[:8]}"
    sent = agent.post(f"/api/handovers/{hid}/messages", {"text": marker})
    # the victim's conversation got nothing (whatever the desk answered)
    assert marker not in _texts(_tracker(desk, victim))
    assert _tracker(desk, victim)["events"] == before
    assert sent.status_code == 200, sent.text
    # the agent's view shows the handover's own conversation, not the victim's
    detail = agent.get(f"/api/handovers/{hid}")
    assert detail.status_code == 200, detail.text
    live = [line["text"] for line in detail.json()["live"]]
    assert "ciao" not in live and marker in live
    back = agent.post(f"/api/handovers/{hid}/handback")
    # handing back resumed nothing and ran no action in the victim's conversation
    assert _tracker(desk, victim)["events"] == before
    assert back.status_code == 200, back.text
    # the reply is in the hostile conversation, as Rasa addresses it
    own = _tracker(desk, hostile)
    assert marker in _texts(own)
    assert any(e.get("event") == "resume" for e in own["events"])


# ---- item 10: the agent's view ends when the handover ends -----------------------------------


def test_an_agent_cannot_read_or_write_a_handover_that_ended_or_went_to_someone_else(desk):
    from bot.handover import service

    sender = f"sec-{uuid.uuid4().hex[:12]}"
    desk.talk(sender, "ciao")
    giulia = Agent(desk.desk_url, "giulia")
    sara = Agent(desk.desk_url, "sara")
    first = _handover(sender)
    assert giulia.post(f"/api/handovers/{first}/claim").status_code == 200
    assert giulia.post(f"/api/handovers/{first}/messages",
                       {"text": "Buongiorno, sono Giulia"}).status_code == 200
    assert giulia.get(f"/api/handovers/{first}").status_code == 200  # while it is hers
    assert giulia.post(f"/api/handovers/{first}/close").status_code == 200

    # closed: nothing of it any more, and nothing can be written in it
    _refused(giulia.get(f"/api/handovers/{first}"))
    late = f"still there? {uuid.uuid4().hex[:8]}"
    _refused(giulia.post(f"/api/handovers/{first}/messages", {"text": late}))
    _refused(giulia.post(f"/api/handovers/{first}/handback"))
    _refused(giulia.post(f"/api/handovers/{first}/close"))

    # the customer comes back and Sara takes the new handover: Giulia sees neither
    desk.talk(sender, "buongiorno")
    second = _handover(sender, skill="commercial")
    assert sara.post(f"/api/handovers/{second}/claim").status_code == 200
    secret = f"Sara here {uuid.uuid4().hex[:8]}"
    assert sara.post(f"/api/handovers/{second}/messages", {"text": secret}).status_code == 200
    _refused(giulia.get(f"/api/handovers/{first}"))
    _refused(giulia.get(f"/api/handovers/{second}"))
    _refused(giulia.post(f"/api/handovers/{second}/messages", {"text": late}))
    _refused(giulia.post(f"/api/handovers/{second}/close"))
    assert late not in _texts(_tracker(desk, sender))
    assert sara.get(f"/api/handovers/{second}").status_code == 200

    # taken away from Sara (she did not answer in time): her view ends too
    service.requeue(second, "test: taken away")
    _refused(sara.get(f"/api/handovers/{second}"))
    _refused(sara.post(f"/api/handovers/{second}/messages", {"text": late}))


def test_the_desk_stops_pushing_a_conversation_once_its_handover_ended(desk):
    ended, other = f"sec-{uuid.uuid4().hex[:12]}", f"sec-{uuid.uuid4().hex[:12]}"
    agent = Agent(desk.desk_url, "giulia")
    h1, h2 = _handover(ended), _handover(other)
    for hid in (h1, h2):
        assert agent.post(f"/api/handovers/{hid}/claim").status_code == 200
        assert agent.post(f"/api/handovers/{hid}/messages",
                          {"text": "Buongiorno, sono Giulia"}).status_code == 200
    socket = DeskSocket(desk.desk_url, agent)
    try:
        # while it is hers, the customer's lines reach her page
        desk.talk(ended, "buongiorno")
        socket.wait_for(lambda m: m.get("type") == "message" and m.get("handover_id") == h1
                        and m.get("text") == "buongiorno")
        assert agent.post(f"/api/handovers/{h1}/close").status_code == 200
        with session_scope() as db:
            closed_at = db.get(Handover, h1).closed_at

        # the customer writes again after the close, then the other customer does: once the
        # other line is on her page, the desk has read everything before it
        desk.talk(ended, "grazie mille")
        desk.talk(other, "buonasera")
        socket.wait_for(lambda m: m.get("type") == "message" and m.get("handover_id") == h2
                        and m.get("text") == "buonasera")
        leaked = [m for m in socket.messages if m.get("type") == "message"
                  and m.get("handover_id") == h1
                  and datetime.fromisoformat(m["at"]).astimezone(timezone.utc) >= closed_at]
        assert leaked == []
        assert not any(m.get("text") == "grazie mille" for m in socket.messages)
    finally:
        socket.close()


# ---- item 11: CSV exports --------------------------------------------------------------------

FORMULA = "x;=1+1;y"


def _csv_pieces(text: str):
    """Every piece of every line, as a spreadsheet splitting on ';' or on ',' would cut it."""
    for line in text.splitlines():
        for sep in (";", ","):
            for piece in line.split(sep):
                yield piece.strip().strip('"').strip()


@pytest.fixture
def formula_conversation(desk):
    """A conversation whose customer wrote `x;=1+1;y`, in the console's log: (id, sender)."""
    from bot.analytics.models import Conversation

    sender = f"csv-{uuid.uuid4().hex[:12]}"
    desk.talk(sender, FORMULA)
    lead = Agent(desk.desk_url, "lucia")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with session_scope() as db:
            cid = db.execute(select(Conversation.id).where(Conversation.sender_id == sender)
                             ).scalars().first()
        if cid is not None:
            detail = lead.get(f"/console/api/conversations/{cid}").json()
            if any(FORMULA in (m.get("text") or "") for m in detail.get("messages", [])):
                return cid, sender
        time.sleep(0.3)
    raise AssertionError("the conversation never reached the console's log")


def test_csv_exports_hold_no_piece_that_starts_a_formula(desk, formula_conversation):
    cid, _ = formula_conversation
    lead = Agent(desk.desk_url, "lucia")
    assert lead.post(f"/console/api/conversations/{cid}/tags",
                     {"tag": "ok;=1+1,@SUM(1)"}).status_code == 200

    one = lead.get(f"/console/api/conversations/{cid}/export.csv")
    assert one.status_code == 200 and one.headers["content-type"].startswith("text/csv")
    assert "x;'=1+1;y" in one.text  # the text is kept, the formula disarmed
    listed = lead.get("/console/api/conversations.csv")
    assert listed.status_code == 200 and "ok;'=1+1,'@SUM(1)" in listed.text
    for text in (one.text, listed.text):
        bad = [p for p in _csv_pieces(text) if p.startswith(("=", "+", "@"))]
        assert bad == []
    # and the file still reads as the same table
    rows = list(csv.DictReader(io.StringIO(one.text)))
    assert any(r["text"] == "x;'=1+1;y" for r in rows)


# ---- item 12: reveal needs a reason ----------------------------------------------------------


def test_an_admin_cannot_reveal_personal_data_without_a_reason(desk, formula_conversation):
    from bot.analytics.models import RevealAudit

    cid, _ = formula_conversation
    admin = Agent(desk.desk_url, "admin")

    def audits() -> list[str]:
        with session_scope() as db:
            return list(db.execute(select(RevealAudit.reason)
                                   .where(RevealAudit.conversation_id == cid)).scalars())

    for reason in (None, "", "   ", "\t\n ", "x", "ok ok", "........", "- - - - -"):
        body = {} if reason is None else {"reason": reason}
        r = admin.post(f"/console/api/conversations/{cid}/reveal", body)
        assert r.status_code == 400, (reason, r.status_code, r.text)
        assert "reason" in r.json()["error"] and "lines" not in r.json()
    assert audits() == []

    r = admin.post(f"/console/api/conversations/{cid}/reveal",
                   {"reason": "  customer request T-2026-000123  "})
    assert r.status_code == 200, r.text
    assert FORMULA in [line["text"] for line in r.json()["lines"]]
    assert audits() == ["customer request T-2026-000123"]


# ---- item 12: security headers ---------------------------------------------------------------

REQUIRED_CSP = ["default-src 'self'", "frame-ancestors 'none'", "object-src 'none'",
                "base-uri 'none'", "form-action 'self'"]


def _check_headers(r: httpx.Response, static: bool = False) -> None:
    what = f"{r.request.method} {r.request.url.path} -> {r.status_code}"
    csp = r.headers.get("content-security-policy", "")
    directives = [d.strip() for d in csp.split(";")]
    for directive in REQUIRED_CSP:
        assert directive in directives, (what, csp)
    assert "'unsafe-eval'" not in csp, what
    script = next(d for d in directives if d.startswith("script-src"))
    assert "'unsafe-inline'" not in script, what
    assert r.headers.get("x-frame-options") == "DENY", what
    assert r.headers.get("x-content-type-options") == "nosniff", what
    assert r.headers.get("referrer-policy") == "no-referrer", what
    if not static:
        assert r.headers.get("cache-control") == "no-store", what


def test_every_desk_response_carries_the_security_headers(desk, formula_conversation):
    cid, _ = formula_conversation
    url = desk.desk_url
    anonymous = [httpx.get(f"{url}/login"), httpx.get(f"{url}/health"),
                 httpx.get(f"{url}/desk"), httpx.get(f"{url}/api/queue"),
                 httpx.get(f"{url}/no-such-page"), httpx.put(f"{url}/login"),
                 httpx.post(f"{url}/login", data={"username": "x", "password": "y"}),
                 httpx.get(f"{url}/static/no-such-file.js")]
    assert [r.status_code for r in anonymous] == [200, 200, 302, 401, 404, 405, 403, 404]
    for r in anonymous:
        _check_headers(r)
    for name in ("desk.js", "common.js", "desk.css", "console.js", "dashboard.js"):
        r = httpx.get(f"{url}/static/{name}")
        assert r.status_code == 200
        _check_headers(r, static=True)

    agent = Agent(url, "giulia")
    lead = Agent(url, "lucia")
    admin = Agent(url, "admin")
    signed_in = [agent.get("/desk"), agent.get("/api/me"), agent.get("/api/queue"),
                 agent.get("/console"), agent.get("/api/handovers/999999"),
                 lead.get("/console"), lead.get(f"/console/conversations/{cid}"),
                 lead.get("/console/dashboard"), lead.get(f"/console/api/conversations/{cid}"),
                 lead.get(f"/console/api/conversations/{cid}/export.csv"),
                 lead.get("/console/api/conversations.json"), lead.get("/console/api/kpis"),
                 lead.get("/console/customers/C1000001"), lead.get("/console/conversations/0"),
                 admin.post(f"/console/api/conversations/{cid}/reveal",
                            {"reason": "security headers test"})]
    assert [r.status_code for r in signed_in] == [200, 200, 200, 403, 404, 200, 200, 200, 200,
                                                  200, 200, 200, 200, 404, 200]
    for r in signed_in:
        _check_headers(r)
    # the pages load nothing inline: scripts and styles only from the desk itself
    for r in (signed_in[0], signed_in[5], signed_in[7], anonymous[0]):
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", r.text), r.request.url
        assert "<style" not in r.text and " style=" not in r.text
        assert not re.search(r"\son[a-z]+=", r.text)


def test_every_site_response_carries_the_security_headers(desk):
    url = desk.site_url
    pages = [httpx.get(f"{url}/"), httpx.get(f"{url}/en"), httpx.get(f"{url}/health"),
             httpx.get(f"{url}/no-such-page"), httpx.post(f"{url}/demo-login", content=b"x"),
             httpx.post(f"{url}/demo-login", json={"customer_code": "C1000001"})]
    assert [r.status_code for r in pages][:4] == [200, 200, 200, 404]
    for r in pages:
        _check_headers(r)
    rasa = desk.rasa_url.rstrip("/")
    connect = next(d for d in pages[0].headers["content-security-policy"].split(";")
                   if d.strip().startswith("connect-src")).split()
    assert rasa in connect and f"ws://{rasa.split('://', 1)[1]}" in connect
    for path in ("/static/site.js", "/static/site.css", "/vendor/rasa-webchat.js"):
        r = httpx.get(f"{url}{path}")
        assert r.status_code == 200, path
        _check_headers(r, static=True)


# ---- item 12: per-account backoff of the desk's sign-in --------------------------------------


def _from(address_index: int) -> httpx.Client:
    """A client whose connections come from 127.0.0.<n>: another address each time."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=f"127.0.0.{address_index}"),
                        timeout=30)


class Guesser:
    """Sign-in attempts from a new address every time."""

    def __init__(self, desk_url: str) -> None:
        self.url, self.next_address = desk_url, 2

    def attempt(self, username: str, password: str) -> httpx.Response:
        with _from(self.next_address) as client:
            self.next_address += 1
            page = client.get(f"{self.url}/login")
            cookie = re.search(r"desk_login_csrf=([^;]+)", page.headers["set-cookie"]).group(1)
            form = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            return client.post(f"{self.url}/login",
                               headers={"Cookie": f"desk_login_csrf={cookie}"},
                               data={"username": username, "password": password,
                                     "csrf_token": form})


def _error_text(r: httpx.Response) -> str:
    match = re.search(r'<p class="error"[^>]*>(.*?)</p>', r.text, re.S)
    return re.sub(r"\d+", "N", match.group(1)) if match else r.text


@pytest.fixture
def account(desk):
    """A desk user of this test alone (the demo users must stay usable): (username, password)."""
    import secrets

    from bot.desk.auth import add_user

    username = f"sec-{desk.profile}-{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(18)
    add_user(username, password, "agent", "Security test", ["billing"], ["it"])
    return username, password


def test_password_guessing_from_many_addresses_locks_the_account(desk, account):
    from bot.desk.lockout import FIRST_LOCK_SECONDS, FREE_ATTEMPTS

    username, password = account
    unknown = f"nobody-{uuid.uuid4().hex[:8]}"
    guesser = Guesser(desk.desk_url)
    answers = {}
    for name in (username, unknown):
        responses = [guesser.attempt(name, f"guess-{i}") for i in range(FREE_ATTEMPTS + 2)]
        answers[name] = responses
        assert [r.status_code for r in responses] == [401] * FREE_ATTEMPTS + [429, 429], name
        for r in responses[FREE_ATTEMPTS:]:
            assert 1 <= int(r.headers["retry-after"]) <= FIRST_LOCK_SECONDS
            assert "desk_session" not in r.headers.get("set-cookie", "")
            _check_headers(r)
    # the right password does not get through while locked, and says nothing more
    right = guesser.attempt(username, password)
    assert right.status_code == 429 and "desk_session" not in right.headers.get("set-cookie", "")
    # an unknown username gets the very same answers
    assert _error_text(answers[username][0]) == _error_text(answers[unknown][0])
    assert _error_text(answers[username][-1]) == _error_text(answers[unknown][-1])
    assert _error_text(right) == _error_text(answers[unknown][-1])
    # other accounts are not affected
    assert guesser.attempt("giulia", "not-her-password").status_code == 401


def test_a_successful_sign_in_resets_the_count(desk, account):
    from bot.desk.lockout import FREE_ATTEMPTS

    username, password = account
    guesser = Guesser(desk.desk_url)
    for _ in range(FREE_ATTEMPTS - 1):
        assert guesser.attempt(username, "wrong-password").status_code == 401
    ok = guesser.attempt(username, password)
    assert ok.status_code == 302 and "desk_session=" in ok.headers["set-cookie"]
    codes = [guesser.attempt(username, "wrong-password").status_code
             for _ in range(FREE_ATTEMPTS + 1)]
    assert codes == [401] * FREE_ATTEMPTS + [429]
