"""The review console's conversation pages against the real stack (Rasa server, action server,
desk) on both profiles: a conversation held over REST reaches the console through the desk's
log, with what the bot understood and the outcome; filters, search, tags, notes, reviewed and
annotations over HTTP; the exports; who may see what (agents and strangers are refused, only an
admin reveals personal data, and every reveal is recorded)."""

from __future__ import annotations

import csv
import io
import json
import random
import re
import time

import httpx
import pytest
from sqlalchemy import select

from bot.analytics.models import RevealAudit
from bot.persistence.db import session_scope
from tests.integration.desk_client import Agent
from tests.integration.test_handover import _reset

pytestmark = pytest.mark.integration
CONSOLE_PREFIX = "/console"


def marker() -> str:
    """A word no one else writes: letters only, so that no masking rule touches it."""
    return "".join(random.choice("bcdfghjklmnpqrstvwxz") for _ in range(12))


def wait_listed(lead: Agent, query: str, timeout: float = 20, total: int = 1,
                check=lambda rows: True) -> list[dict]:
    """The console's rows for `query`, once the log has caught up."""
    deadline = time.monotonic() + timeout
    rows: list[dict] = []
    while time.monotonic() < deadline:
        r = lead.get(f"/console/api/conversations?{query}")
        assert r.status_code == 200, r.text
        rows = r.json()["rows"]
        if len(rows) >= total and check(rows):
            return rows
        time.sleep(0.5)
    raise AssertionError(f"not in the console after {timeout}s: {query} -> {rows}")


def wait_detail(lead: Agent, cid: int, predicate, timeout: float = 20) -> dict:
    """The console's detail of conversation `cid`, once `predicate` holds for it."""
    deadline = time.monotonic() + timeout
    while True:
        detail = lead.get(f"/console/api/conversations/{cid}").json()
        if predicate(detail):
            return detail
        if time.monotonic() > deadline:
            lines = [(m.get("sender"), m.get("text")) for m in detail.get("messages", [])]
            raise AssertionError(f"conversation {cid} not as expected after {timeout}s: {lines}")
        time.sleep(0.5)


@pytest.fixture
def identified(stack, sender, token):
    """Maria Rossi (C1000001) on the web: a greeting with her name, a word of ours, a question
    about her bill. The conversation's console id, the word and the sender."""
    word = marker()
    t = token("C1000001")
    stack.talk(sender, "ciao, sono Maria Rossi", t)
    stack.talk(sender, word, t)
    stack.talk(sender, "quanto devo pagare?", t)
    lead = Agent(stack.desk_url, "lucia")
    # the row as listed once the whole conversation is in the log (it can be listed as soon as
    # the word is, before the last turn arrives)
    [row] = wait_listed(lead, f"q={word}", check=lambda rows: rows[0]["turns"] >= 3)

    def answered(detail):  # the third customer message and the bot's answer to it
        senders = [m["sender"] for m in detail["messages"] if m["sender"] in ("customer", "bot")]
        return senders.count("customer") >= 3 and senders[-1] == "bot"

    detail = wait_detail(lead, row["id"], answered)
    return {"id": row["id"], "word": word, "sender": sender, "row": row, "detail": detail,
            "lead": lead}


def test_a_real_conversation_in_the_console(stack, identified):
    lead, cid, word = identified["lead"], identified["id"], identified["word"]
    row = identified["row"]
    assert (row["channel"], row["language"], row["customer_code"], row["persona"]) == (
        "web", "it", "C1000001", "family")
    assert row["turns"] == 3 and row["outcome"] == "contained"
    assert {"greet", "check_bill"} <= set(row["intents"])
    assert "self_care" in row["stages"]
    detail = identified["detail"]
    customer = [m for m in detail["messages"] if m["sender"] == "customer"]
    assert [m["text"] for m in customer] == ["ciao, sono [NAME]", word, "quanto devo pagare?"]
    assert customer[0]["intent"] == "greet" and customer[2]["intent"] == "check_bill"
    assert all(0 < m["confidence"] <= 1 for m in customer)
    assert any(m["sender"] == "bot" and m["text"] for m in detail["messages"])
    assert "Maria" not in json.dumps(detail) and "Rossi" not in json.dumps(detail)

    # filters and search over HTTP
    def ids(query):
        r = lead.get(f"/console/api/conversations?{query}")
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["rows"]]

    assert ids(f"q={word}&intent=check_bill&channel=web&language=it&persona=family") == [cid]
    assert ids(f"q={word}&customer_code=c1000001&outcome=contained&stage=self_care") == [cid]
    assert ids(f"q={word.upper()}&sort=-turns&per_page=5") == [cid]
    assert ids(f"q={word}&intent=move_home") == []
    assert ids(f"q={word}&channel=whatsapp") == []
    assert ids(f"q={word}&reviewed=yes") == []
    assert cid in ids("q=quanto pagare&customer_code=C1000001&per_page=500")
    bad = lead.get("/console/api/conversations?csat=7&sort=name")
    assert bad.status_code == 400 and "csat: a rating from 1 to 5" in bad.json()["error"]
    assert lead.get("/console/api/conversations?sort=name").status_code == 400
    assert lead.get("/console/api/conversations?page=x").status_code == 400

    # the CX lead's work
    assert lead.post(f"/console/api/conversations/{cid}/tags", {"tag": "great"}).json() == {
        "tags": ["great"]}
    assert lead.post(f"/console/api/conversations/{cid}/tags",
                     {"tag": "  fattura  gas "}).json()["tags"] == ["fattura gas", "great"]
    assert lead.post(f"/console/api/conversations/{cid}/tags", {"tag": "x" * 41}
                     ).status_code == 400
    assert lead.post(f"/console/api/conversations/{cid}/tags/delete", {"tag": "fattura gas"}
                     ).json()["tags"] == ["great"]
    note = lead.post(f"/console/api/conversations/{cid}/notes",
                     {"text": "richiamare al 333 1234567 o maria.rossi@example.it"}).json()
    assert note["note"]["text"] == "richiamare al [PHONE] o [EMAIL]"
    assert note["note"]["author"] == "Lucia (CX lead)"
    assert lead.post(f"/console/api/conversations/{cid}/reviewed", {"reviewed": True}
                     ).json() == {"reviewed": True}
    assert lead.post(f"/console/api/conversations/{cid}/reviewed", {"reviewed": "yes"}
                     ).status_code == 400
    bot_line = next(m for m in detail["messages"] if m["sender"] == "bot")
    r = lead.post(f"/console/api/conversations/{cid}/messages/{customer[1]['id']}/annotation",
                  {"intent": "check_bill"})
    assert r.status_code == 200 and r.json()["annotation"]["language"] == "it"
    r = lead.post(f"/console/api/conversations/{cid}/messages/{bot_line['id']}/annotation",
                  {"intent": "check_bill"})
    assert r.status_code == 400 and "customer" in r.json()["error"]
    r = lead.post(f"/console/api/conversations/{cid}/messages/{customer[1]['id']}/annotation",
                  {"intent": "buy_pizza"})
    assert r.status_code == 400
    assert lead.post(f"/console/api/conversations/{cid}/messages/999999/annotation",
                     {"intent": "greet"}).status_code == 404
    after = lead.get(f"/console/api/conversations/{cid}").json()
    assert [t["tag"] for t in after["tags"]] == ["great"]
    assert after["reviewed"] is True and after["reviewed_by"]
    assert [n["text"] for n in after["notes"]] == ["richiamare al [PHONE] o [EMAIL]"]
    annotated = next(m for m in after["messages"] if m["id"] == customer[1]["id"])
    assert annotated["annotation"]["intent"] == "check_bill"
    assert ids(f"q={word}&tag=great&reviewed=yes") == [cid]
    yml = lead.get("/console/api/annotations.yml?language=it")
    assert yml.status_code == 200 and "attachment" in yml.headers["content-disposition"]
    assert f"- {word}" in yml.text and "- intent: check_bill" in yml.text
    assert lead.get("/console/api/annotations.yml?language=de").status_code == 400
    r = httpx.delete(f"{stack.desk_url}/console/api/conversations/{cid}/messages/"
                     f"{customer[1]['id']}/annotation",
                     headers={**lead.headers, "X-CSRF-Token": lead.csrf})
    assert r.json() == {"removed": True}
    assert f"- {word}" not in lead.get("/console/api/annotations.yml?language=it").text

    # the pages
    for path in ("/console", f"/console/conversations/{cid}", "/console/customers/C1000001",
                 f"/console?q={word}&channel=web"):
        page = lead.get(path)
        assert page.status_code == 200 and 'href="/console/dashboard"' in page.text, path
    assert lead.get("/console/conversations/999999").status_code == 404
    assert lead.get("/console/customers/nobody").status_code == 404
    assert cid in ids("customer_code=C1000001&per_page=500")
    home = httpx.get(f"{stack.desk_url}/", headers=lead.headers, follow_redirects=False)
    assert home.status_code == 302 and home.headers["location"] == "/console"


def test_exports_over_http(stack, identified):
    lead, cid, word = identified["lead"], identified["id"], identified["word"]
    r = lead.get(f"/console/api/conversations.csv?q={word}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert re.match(r'attachment; filename="conversations-\d{8}-\d{4}\.csv"',
                    r.headers["content-disposition"])
    [row] = list(csv.DictReader(io.StringIO(r.text)))
    assert (int(row["id"]), row["customer_code"], row["outcome"], row["channel"]) == (
        cid, "C1000001", "contained", "web")
    assert "check_bill" in row["intents"].split("; ")
    r = lead.get(f"/console/api/conversations.json?q={word}&channel=web")
    data = r.json()
    assert data["total"] == 1 and data["conversations"][0]["id"] == cid
    assert data["filters"] == {"channel": "web", "q": word}
    assert lead.get("/console/api/conversations.csv?language=xx").status_code == 400
    # all matching rows, not a page
    # (the desk may still be adding earlier tests' conversations to the log meanwhile)
    before = lead.get("/console/api/conversations?per_page=1").json()["total"]
    everything = lead.get("/console/api/conversations.json").json()
    after = lead.get("/console/api/conversations?per_page=1").json()["total"]
    assert everything["total"] == len(everything["conversations"]) > 1
    assert before <= everything["total"] <= after

    one = lead.get(f"/console/api/conversations/{cid}/export.json")
    assert one.headers["content-disposition"] == f'attachment; filename="conversation-{cid}.json"'
    record = one.json()
    assert record["id"] == cid and record["messages"][0]["text"] == "ciao, sono [NAME]"
    transcript = lead.get(f"/console/api/conversations/{cid}/export.csv")
    lines = list(csv.DictReader(io.StringIO(transcript.text)))
    assert [x["text"] for x in lines if x["sender"] == "customer"] == [
        "ciao, sono [NAME]", word, "quanto devo pagare?"]
    assert lines[0]["intent"] == "greet" and float(lines[0]["confidence"]) > 0
    for text in (r.text, one.text, transcript.text, json.dumps(everything)):
        assert "Maria Rossi" not in text
    assert lead.get("/console/api/conversations/999999/export.csv").status_code == 404


def test_a_handover_is_shown_as_such(stack, sender):
    _reset()  # nobody online: the bot offers a callback or a ticket instead
    word = marker()
    stack.talk(sender, f"ciao {word}")
    stack.talk(sender, "voglio parlare con un operatore")
    lead = Agent(stack.desk_url, "lucia")
    rows = wait_listed(lead, f"q={word}")
    deadline = time.monotonic() + 20
    while rows[0]["outcome"] != "handover" and time.monotonic() < deadline:
        time.sleep(0.5)
        rows = wait_listed(lead, f"q={word}")
    assert rows[0]["outcome"] == "handover" and rows[0]["handed_over"] is True
    assert rows[0]["handover_reason"] == "request_human"
    assert rows[0]["customer_code"] is None
    r = lead.get(f"/console/api/conversations?q={word}&outcome=handover")
    assert [x["id"] for x in r.json()["rows"]] == [rows[0]["id"]]


def _console_routes() -> list[tuple[str, str]]:
    from bot.desk.app import create_app

    app = create_app(f"console_walk_{random.randrange(10**9)}")
    out = []
    for route in app.router.routes:
        if ".console." not in route.name:  # this blueprint's routes only
            continue
        path = re.sub(r"<[^>]+>", "1", "/" + route.path.lstrip("/"))
        if "/customers/" in path:
            path = path.replace("/customers/1", "/customers/C1000001")
        for method in route.methods:
            out.append((method, path))
    return out


def test_who_may_use_the_console(stack, identified):
    routes = _console_routes()
    assert len(routes) >= 18
    assert ("POST", "/console/api/conversations/1/reveal") in routes
    assert all(path.startswith(CONSOLE_PREFIX) for _, path in routes)
    agent = Agent(stack.desk_url, "giulia")
    for method, path in routes:
        # strangers: the login page for pages, 401 for the API
        r = httpx.request(method, f"{stack.desk_url}{path}", follow_redirects=False)
        if path.startswith("/console/api/"):
            assert r.status_code == 401, (method, path, r.status_code)
        else:
            assert (r.status_code, r.headers.get("location")) == (302, "/login"), (method, path)
        # an agent, even with the CSRF token: refused
        r = httpx.request(method, f"{stack.desk_url}{path}", json={"tag": "great"},
                          headers={**agent.headers, "X-CSRF-Token": agent.csrf})
        assert r.status_code == 403, (method, path, r.status_code)
        if path.startswith("/console/api/"):
            assert r.json()["error"] == "not allowed for your role"
        else:
            assert "This page is not for your role (agent)" in r.text
    home = httpx.get(f"{stack.desk_url}/", headers=agent.headers, follow_redirects=False)
    assert home.headers["location"] == "/desk"

    cid = identified["id"]
    lead = identified["lead"]
    # a CX lead without the CSRF token cannot change anything
    r = httpx.post(f"{stack.desk_url}/console/api/conversations/{cid}/tags",
                   json={"tag": "great"}, headers=lead.headers)
    assert r.status_code == 403 and "CSRF" in r.json()["error"]
    # a CX lead never sees personal data
    assert lead.post(f"/console/api/conversations/{cid}/reveal").status_code == 403
    assert "Reveal personal data" not in lead.get(f"/console/conversations/{cid}").text
    with session_scope() as db:
        assert db.execute(select(RevealAudit).where(RevealAudit.conversation_id == cid)
                          ).scalars().all() == []

    admin = Agent(stack.desk_url, "admin")
    assert "Reveal personal data" in admin.get(f"/console/conversations/{cid}").text
    before = time.time()
    r = admin.post(f"/console/api/conversations/{cid}/reveal",
                   {"reason": "test: the customer asked for her data"})
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    revealed = r.json()
    customer = [x["text"] for x in revealed["lines"] if x["sender"] == "customer"]
    assert customer == ["ciao, sono Maria Rossi", identified["word"], "quanto devo pagare?"]
    assert any(x["sender"] == "bot" for x in revealed["lines"])
    with session_scope() as db:
        [audit] = db.execute(select(RevealAudit).where(RevealAudit.conversation_id == cid)
                             ).scalars().all()
    assert audit.id == revealed["audit_id"] and audit.username == "admin"
    assert audit.user_id is not None and audit.reason == "test: the customer asked for her data"
    assert audit.at.timestamp() >= before - 1
    # the masked log is unchanged by a reveal
    assert "Maria" not in admin.get(f"/console/api/conversations/{cid}").text
    assert admin.post("/console/api/conversations/999999/reveal").status_code == 404


def test_complaints_by_time_left(stack):
    """The complaint clocks page: the complaints waiting for an answer, the nearest deadline
    first, the late ones flagged with the indemnity owed; CX leads only."""
    from datetime import datetime, timedelta

    from bot.crm import models as m
    from bot.crm.service import open_ticket
    from bot.settings import local_zone

    def complaint(code: str, text: str, days_ago: int) -> str:
        ticket_id = open_ticket(code, "complaint", text, "web", description=text).ticket_id
        with session_scope() as db:  # arrived days ago: its deadline follows
            row = db.execute(select(m.Ticket).where(m.Ticket.ticket_id == ticket_id)
                             ).scalar_one()
            row.opened_at = row.opened_at - timedelta(days=days_ago)
        return ticket_id

    created: list[str] = []
    try:
        created.append(complaint("C1000002", "Il tecnico non si è presentato", 40))  # 10 late
        created.append(complaint("C1000002", "Mi avete addebitato due volte la bolletta, "
                                             "scrivetemi a giuseppe.bianchi@example.it", 14))
        created.append(complaint("C1000004", "The amount on my last bill is wrong", 1))
        lead = Agent(stack.desk_url, "lucia")
        r = lead.get("/console/api/complaints?per_page=500")
        assert r.status_code == 200, r.text
        data = r.json()
        rows = {row["ticket_id"]: row for row in data["rows"] if row["ticket_id"] in created}
        late, soon, fresh = (rows[t] for t in created)
        assert [row["ticket_id"] for row in data["rows"] if row["ticket_id"] in created] == created
        assert (late["late"], late["days_left"], late["indemnity_eur"], late["kind"]) == (
            True, -10, "30.00", "general")
        # every complaint is answered within 30 days; a billing dispute shows its correction's
        assert (soon["late"], soon["days_left"], soon["kind"]) == (False, 16, "double_billing")
        assert (fresh["days_left"], fresh["kind"]) == (29, "billing_correction")
        assert soon["subject"].endswith("[EMAIL]") and "giuseppe" not in r.text.lower()
        today = datetime.now(local_zone()).date()
        assert late["last_day"] == (today - timedelta(days=10)).isoformat()
        assert late["correction_due"] is None
        assert soon["correction_due"] == (today + timedelta(days=1)).isoformat()
        assert fresh["correction_due"] == (today + timedelta(days=59)).isoformat()
        everything = [row["days_left"] for row in data["rows"]]
        assert everything == sorted(everything)  # the whole list by time left
        assert data["late"] >= 1 and float(data["indemnity_owed_eur"]) >= 30
        assert data["rules"]["answer_days"] == 30
        assert data["rules"]["correction_days"] == {"billing_correction": 60,
                                                    "double_billing": 15}
        page = lead.get("/console/complaints")
        assert page.status_code == 200 and "Complaints waiting for an answer" in page.text
        assert lead.get("/console/api/complaints?page=x").status_code == 400
        # agents and strangers: refused
        agent = Agent(stack.desk_url, "giulia")
        assert agent.get("/console/api/complaints").status_code == 403
        assert agent.get("/console/complaints").status_code == 403
        assert httpx.get(f"{stack.desk_url}/console/api/complaints").status_code == 401
        stranger = httpx.get(f"{stack.desk_url}/console/complaints", follow_redirects=False)
        assert (stranger.status_code, stranger.headers.get("location")) == (302, "/login")
    finally:
        with session_scope() as db:
            for ticket_id in created:
                db.execute(m.Ticket.__table__.delete().where(m.Ticket.ticket_id == ticket_id))
