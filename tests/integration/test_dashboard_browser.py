"""The KPI dashboard on the real stack: customers talk to the bot over REST, the log worker
follows the event stream, and a CX lead (lucia) sees the KPIs drawn with Chart.js in headless
Chromium; changing the break-down redraws the charts. Agents are refused; bad input gets 400."""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import delete, select

from bot.analytics.kpis import KPI_DEFINITIONS
from bot.analytics.models import Conversation
from bot.persistence.db import session_scope
from tests.integration.desk_client import Agent, password_for

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CANVASES = ("chart-breakdown", "chart-volume-day", "chart-volume-channel", "chart-outcomes",
            "chart-reasons", "chart-csat", "chart-times", "chart-top-intents",
            "chart-failing-intents")
HOSTILE_CHANNEL = "<img src=x onerror=pwned=1>"  # fits the channel column (32)


@pytest.fixture
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def logged(sender: str, turns: int = 1, language: str = "it",
           timeout: float = 30) -> Conversation:
    """The sender's conversation once the log has its customer messages (the log
    follows the event stream every second)."""
    deadline = time.monotonic() + timeout
    conv = None
    while time.monotonic() < deadline:
        with session_scope() as db:
            conv = db.execute(select(Conversation).where(Conversation.sender_id == sender)
                              ).scalars().first()
            if conv is not None:
                db.expunge(conv)
                if conv.turns >= turns and conv.language == language:
                    return conv
        time.sleep(0.5)
    raise AssertionError(f"{sender} never reached the conversation log: "
                         f"{conv and (conv.turns, conv.language)}")


def labels(page, canvas_id: str) -> list:
    return page.evaluate("(id) => Chart.getChart(document.getElementById(id)).data.labels",
                         canvas_id)


def test_cx_lead_sees_the_kpis_in_the_browser(stack, browser, token):
    ARTIFACTS.mkdir(exist_ok=True)
    first, second = (f"dash-{uuid.uuid4().hex[:10]}" for _ in range(2))
    assert stack.talk(first, "ciao")
    assert stack.talk(first, "vorrei sapere quanto devo pagare sulla bolletta")
    assert stack.talk(second, "hi", token("C1000004"))  # John Smith, an English customer
    assert logged(first, turns=2).channel == "web"
    logged(second, language="en")
    # a conversation whose channel is HTML: the dashboard must show it as text
    hostile = f"dash-hostile-{uuid.uuid4().hex[:8]}"
    now = datetime.now(timezone.utc)
    # The previous period (the 30 days before the last 30) holds only these three
    # conversations, all contained; today one more is abandoned after three misunderstood
    # messages: containment and abandonment got worse, and the page must say so first.
    earlier = now - timedelta(days=40)
    past = [f"dash-past-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    lost = f"dash-lost-{uuid.uuid4().hex[:8]}"
    inserted = [hostile, lost, *past]

    def record(sender, when, channel="web", outcome="contained", turns=1, fallbacks=0):
        return Conversation(sender_id=sender, session_start=when.timestamp(), channel=channel,
                            language="it", outcome=outcome, ended=True, turns=turns,
                            fallbacks=fallbacks, last_was_fallback=fallbacks > 0,
                            handed_over=False, reviewed=False, started_at=when,
                            last_event_at=when, ended_at=when + timedelta(seconds=1))

    with session_scope() as db:
        db.add(record(hostile, now, channel=HOSTILE_CHANNEL))
        db.add(record(lost, now, outcome="abandoned", turns=3, fallbacks=3))
        for i, sender in enumerate(past):
            db.add(record(sender, earlier + timedelta(hours=i), turns=2))
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # script errors and CSP violations; not the 400 of the bad-input step below
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error"
            and "Failed to load resource" not in msg.text else None)
    try:
        page.goto(f"{stack.desk_url}/console/dashboard")
        assert page.url.endswith("/login")  # not signed in: sent to the login page
        page.fill("#username", "lucia")
        page.fill("#password", password_for(stack.desk_url, "lucia"))
        page.click("#sign-in")
        page.wait_for_load_state()
        page.goto(f"{stack.desk_url}/console/dashboard")
        dash = page.locator("#dashboard")
        expect(dash).to_have_attribute("data-state", "ready", timeout=20_000)
        expect(page.locator("#nav-conversations")).to_have_attribute("href", "/console")

        # every chart is a canvas with a Chart.js instance
        for canvas in CANVASES:
            assert page.evaluate("(id) => Chart.getChart(document.getElementById(id)) != null",
                                 canvas), canvas
        days = labels(page, "chart-volume-day")
        assert len(days) == 30
        today = page.evaluate("""() => { const c = Chart.getChart(
            document.getElementById('chart-volume-day')); return c.data.datasets[0].data; }""")
        assert today[-1] >= 3  # our three conversations started today
        assert "web" in labels(page, "chart-volume-channel")
        assert labels(page, "chart-outcomes") == ["contained", "handover", "abandoned"]

        # the KPI cards: every KPI, the worsened ones first, with the previous period
        cards = page.locator("#cards .card")
        expect(cards).to_have_count(len(KPI_DEFINITIONS))
        flags = [cards.nth(i).get_attribute("data-worse") for i in range(len(KPI_DEFINITIONS))]
        assert flags == sorted(flags, reverse=True)  # "true" before "false"
        for key in ("resolution_rate", "net_resolution_rate", "silent_failure_rate"):
            expect(page.locator(f'#cards .card[data-key="{key}"]')).to_have_count(1)
        for key in ("containment_rate", "abandonment_rate"):
            card = page.locator(f'#cards .card[data-key="{key}"]')
            expect(card).to_have_attribute("data-worse", "true")
            expect(card).to_have_class(re.compile(r"\bworse\b"))
            expect(card.locator(".flag")).to_have_text("worse")
        assert cards.first.get_attribute("data-worse") == "true"
        summary = page.locator("#worse-summary")
        expect(summary).to_have_class(re.compile(r"\bhas-worse\b"))
        expect(summary).to_contain_text("Containment rate")
        expect(summary).to_contain_text("Abandonment rate")
        conversations = page.locator('#cards .card[data-key="conversations"]')
        expect(conversations).to_contain_text("previous period")
        assert int(conversations.locator(".value").inner_text().replace(",", "")) >= 3

        # break-down by channel first (the page's default), then by language and stage
        expect(dash).to_have_attribute("data-by", "channel")
        by_channel = labels(page, "chart-breakdown")
        assert "web" in by_channel and HOSTILE_CHANNEL in by_channel
        table = page.locator("#breakdown-table")
        expect(table).to_contain_text(HOSTILE_CHANNEL)  # shown as text
        assert table.locator("img").count() == 0
        assert page.locator("#f-channel option", has_text=HOSTILE_CHANNEL).count() == 1
        assert page.evaluate("window.pwned") is None

        page.select_option("#f-by", "language")
        expect(dash).to_have_attribute("data-by", "language")
        expect(dash).to_have_attribute("data-state", "ready")
        by_language = labels(page, "chart-breakdown")
        assert by_language != by_channel and set(by_language) <= {"it", "en"}
        assert "it" in by_language and "en" in by_language
        expect(table.locator("thead th").first).to_have_text("language")

        page.select_option("#f-by", "stage")
        expect(dash).to_have_attribute("data-by", "stage")
        expect(dash).to_have_attribute("data-state", "ready")
        by_stage = labels(page, "chart-breakdown")
        assert by_stage and set(by_stage) <= {"information & purchase", "use & self-care",
                                              "feedback & loyalty", "conversation",
                                              "no intent understood"}

        # a filter redraws the charts with only that channel
        page.select_option("#f-channel", "web")
        expect(dash).to_have_attribute("data-state", "ready")
        page.select_option("#f-by", "channel")
        expect(dash).to_have_attribute("data-by", "channel")
        expect(dash).to_have_attribute("data-state", "ready")
        assert labels(page, "chart-breakdown") == ["web"]
        assert labels(page, "chart-volume-channel") == ["web"]
        assert "channel=web" in page.url  # the address keeps the view

        page.select_option("#f-channel", "")
        expect(dash).to_have_attribute("data-state", "ready")
        expect(page.locator("#breakdown-table")).to_contain_text("web")
        page.screenshot(path=str(ARTIFACTS / "console-dashboard.png"), full_page=True)

        # bad input reaches the page as a message, not a broken dashboard
        page.fill("#f-from", "2026-12-31")
        page.fill("#f-to", "2026-01-01")
        page.click("#f-apply")
        expect(page.locator("#dash-error")).to_contain_text("ends before it starts")
        assert not errors, errors
    finally:
        page.close()
        with session_scope() as db:
            db.execute(delete(Conversation).where(Conversation.sender_id.in_(inserted)))


def test_kpi_api_roles_and_input(stack):
    sender = f"dash-{uuid.uuid4().hex[:10]}"
    stack.talk(sender, "ciao")
    logged(sender)

    # strangers: 401 on the API, the login page for the pages
    r = httpx.get(f"{stack.desk_url}/console/api/kpis")
    assert r.status_code == 401
    r = httpx.get(f"{stack.desk_url}/console/dashboard")
    assert r.status_code == 302 and r.headers["location"] == "/login"

    # an agent is refused everything of the dashboard
    giulia = Agent(stack.desk_url, "giulia")
    r = giulia.get("/console/api/kpis")
    assert r.status_code == 403 and r.json() == {"error": "not allowed for your role"}
    for path in ("/console/dashboard", "/console/vendor/chart.umd.js"):  # a page for people
        r = giulia.get(path)
        assert r.status_code == 403, path
        assert r.headers["content-type"].startswith("text/html")
        assert "This page is not for your role (agent)" in r.text and "Chart" not in r.text

    lucia = Agent(stack.desk_url, "lucia")
    r = lucia.get("/console/api/kpis")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["current"]["days"] == 30 and body["previous"]["days"] == 30
    assert body["current"]["kpis"]["conversations"] >= 1
    assert [k["key"] for k in body["kpis"]][:2] == ["conversations", "containment_rate"]
    assert "web" in body["options"]["channels"]
    # every KPI is defined, and so is the complaints' figure beside them
    assert set(body["definitions"]) == {k["key"] for k in body["kpis"]} | {"complaints_on_time"}

    today = body["current"]["to"]
    r = lucia.get(f"/console/api/kpis?from={today}&to={today}&channel=web&language=it&by=stage")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["current"]["days"] == 1 and body["current"]["by"] == "stage"
    assert body["current"]["filters"] == {"channel": "web", "language": "it"}
    assert body["current"]["kpis"]["conversations"] >= 1
    assert body["previous"]["to"] < today

    for query, message in [
            ("from=2026-13-01", "from: a date as YYYY-MM-DD"),
            ("from=yesterday", "from: a date as YYYY-MM-DD"),
            ("to=2026-1-5", "to: a date as YYYY-MM-DD"),
            ("from=2026-03-10&to=2026-03-01", "ends before it starts"),
            ("from=2024-01-01&to=2026-03-01", "longer than 366 days"),
            ("by=intent", "by must be one of channel, language, persona, stage"),
            ("language=fr", "language: one of it, en"),
            ("persona=robot", "persona: one of"),
            ("stage=checkout", "stage: one of"),
            ("channel=fax", "channel: one of web, whatsapp")]:  # the console's rules
        r = lucia.get(f"/console/api/kpis?{query}")
        assert r.status_code == 400, query
        assert message in r.json()["error"], (query, r.json())

    r = lucia.get("/console/vendor/chart.umd.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/javascript")
    assert r.text.startswith("/*!\n * Chart.js v4.")
    r = lucia.get("/console/dashboard")
    assert r.status_code == 200 and "script-src 'self'" in r.headers["content-security-policy"]

    assert Agent(stack.desk_url, "admin").get("/console/api/kpis").status_code == 200
