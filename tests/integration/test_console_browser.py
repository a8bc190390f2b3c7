"""The review console in headless Chromium (Debian's chromium, driven by Playwright): the CX
lead signs in and lands on the conversation list, filters it and searches, opens a transcript
(a customer's HTML shown as text), tags it with a predefined and a free tag, writes a note
(masked), marks it reviewed, annotates a customer message and downloads the annotations as
Rasa NLU YAML; an admin reveals the personal data; a customer's page lists their conversations
on every channel; a transcript with entities, actions, a handover and a CSAT; an agent is refused
the console. Screenshots in test-artifacts/console-*.png."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import delete

from bot.analytics.models import Conversation, ConversationIntent, ConversationMessage
from bot.persistence.db import session_scope
from tests.integration.desk_client import Agent, password_for
from tests.integration.test_console import marker, wait_detail, wait_listed

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script><b>bold</b>'


@pytest.fixture
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def sign_in(browser, stack, username: str, password: str):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{stack.desk_url}/console")
    assert page.url.endswith("/login")  # not signed in: the login page
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#sign-in")
    page.wait_for_url("**/console")  # a CX lead or an admin lands on the console
    return context, page, errors


def loaded(page):
    expect(page.locator("#console")).to_have_attribute("data-loaded", "true")


def test_cx_lead_reviews_a_conversation_in_the_browser(stack, browser, sender):
    ARTIFACTS.mkdir(exist_ok=True)
    word = marker()
    stack.talk(sender, f"ciao {word}")
    stack.talk(sender, HOSTILE)
    stack.talk(sender, "quanto devo pagare?")
    lead = Agent(stack.desk_url, "lucia")
    [row] = wait_listed(lead, f"q={word}")
    cid = row["id"]
    # whatever the model made of a greeting with a word it never saw, the console shows it
    said = next(m["intent"] for m in wait_detail(
        lead, cid, lambda d: any(m["text"] == f"ciao {word}" for m in d["messages"]))["messages"]
        if m["text"] == f"ciao {word}")
    assert said
    should_be = "check_bill" if said != "check_bill" else "greet"

    context, page, errors = sign_in(browser, stack, "lucia", password_for(stack.desk_url, "lucia"))
    loaded(page)
    expect(page.locator("#rows tr").first).to_be_visible()
    expect(page.locator("#nav-dashboard")).to_have_attribute("href", "/console/dashboard")
    assert "conversation" in page.locator("#total").inner_text()

    # a filter and the search
    page.select_option("#f-channel", "web")
    page.fill("#f-q", word)
    page.click("#apply")
    page.wait_for_url(f"**/console?*q={word}*")
    assert "channel=web" in page.url
    loaded(page)
    expect(page.locator("#rows tr")).to_have_count(1)
    expect(page.locator("#total")).to_have_text("1 conversation")
    expect(page.locator("#rows tr").first.locator("td.intents")).to_contain_text("check_bill")
    expect(page.locator("#f-q")).to_have_value(word)  # the form shows the filters in use
    expect(page.locator("#f-channel")).to_have_value("web")
    assert f"q={word}" in page.locator("#export-csv").get_attribute("href")
    page.screenshot(path=str(ARTIFACTS / "console-list.png"), full_page=True)
    page.select_option("#f-outcome", "abandoned")  # nothing else matches
    page.click("#apply")
    loaded(page)
    expect(page.locator("#empty")).to_be_visible()
    page.go_back()
    loaded(page)

    # the transcript
    page.locator(f'#rows tr[data-id="{cid}"] a.open').click()
    page.wait_for_url(f"**/console/conversations/{cid}")
    loaded(page)
    transcript = page.locator("#transcript")
    expect(transcript).to_contain_text(f"ciao {word}")
    expect(transcript).to_contain_text("<script>window.pwned=2</script>")  # text, not HTML
    assert page.evaluate("window.pwned") is None
    assert transcript.locator("b, img, script").count() == 0
    first = transcript.locator("li.customer", has_text=f"ciao {word}")
    expect(first.locator(".intent")).to_contain_text(said)
    expect(first.locator(".who")).to_have_text("Customer")
    expect(transcript.locator("li.bot").first.locator(".who")).to_have_text("Bot")
    expect(page.locator("#reveal")).to_have_count(0)  # not for a CX lead

    # tags: a predefined one and a free one
    page.click('.tag-toggle[data-tag="misunderstood"]')
    expect(page.locator('.tag-toggle[data-tag="misunderstood"]')).to_have_attribute(
        "aria-pressed", "true")
    expect(page.locator("#tags")).to_contain_text("misunderstood")
    page.fill("#tag-input", "  da rivedere ")
    page.click("#tag-add")
    expect(page.locator("#tags li")).to_have_count(2)
    expect(page.locator("#tags")).to_contain_text("da rivedere")
    page.locator('#tags li[data-tag="da rivedere"] .chip-remove').click()
    expect(page.locator("#tags li")).to_have_count(1)

    # a note, masked before it is stored
    page.fill("#note-text", "La cliente scrive da mario.rossi@example.it, <b>da richiamare</b>")
    page.click("#note-add")
    notes = page.locator("#notes")
    expect(notes).to_contain_text("La cliente scrive da [EMAIL], <b>da richiamare</b>")
    assert "mario.rossi" not in notes.inner_text()
    expect(page.locator("#note-text")).to_have_value("")

    # reviewed
    page.check("#reviewed")
    expect(page.locator("#reviewed-by")).to_have_text("by Lucia (CX lead)")

    # annotate the greeting with the intent it should have had
    first.locator("select.annotate-intent").select_option(should_be)
    first.locator("button.annotate-save").click()
    expect(transcript.locator("li.customer", has_text=f"ciao {word}").locator(".annotation")
           ).to_contain_text(f"should be: {should_be}")
    assert not errors, errors
    page.screenshot(path=str(ARTIFACTS / "console-conversation.png"), full_page=True)

    # the annotations as Rasa NLU training data
    with page.expect_download() as info:
        page.click("#annotations-it")
    download = info.value
    assert download.suggested_filename == "annotations-it.yml"
    content = Path(download.path()).read_text(encoding="utf-8")
    data = yaml.safe_load(content)
    assert data["version"] == "3.1"
    examples = {block["intent"]: block["examples"] for block in data["nlu"]}
    assert f"- ciao {word}" in examples[should_be].splitlines()

    # the filter on the tag finds it, with the tag and the reviewed mark in the list
    page.goto(f"{stack.desk_url}/console?tag=misunderstood&reviewed=yes&q={word}")
    loaded(page)
    expect(page.locator("#rows tr")).to_have_count(1)
    expect(page.locator("#rows tr").first).to_contain_text("misunderstood")
    expect(page.locator("#rows tr").first).to_contain_text("✓")
    context.close()

    # an admin reveals the conversation as written (here: nothing personal in it)
    context, page, errors = sign_in(browser, stack, "admin", password_for(stack.desk_url, "admin"))
    page.goto(f"{stack.desk_url}/console/conversations/{cid}")
    loaded(page)
    page.fill("#reveal-reason", "browser test")
    page.click("#reveal")
    revealed = page.locator("#revealed")
    expect(revealed).to_be_visible()
    expect(revealed).to_contain_text(f"ciao {word}")
    expect(page.locator("#revealed-note")).to_contain_text("recorded in the audit log")
    expect(revealed).to_contain_text("<script>window.pwned=2</script>")
    assert page.evaluate("window.pwned") is None
    assert revealed.locator("b, img, script").count() == 0
    assert not errors, errors
    page.screenshot(path=str(ARTIFACTS / "console-reveal.png"), full_page=True)
    context.close()


def test_a_customers_page_shows_every_channel(stack, browser):
    """One customer's conversations on the web, WhatsApp and Telegram (records as the log
    holds them), newest first, with a link from the list; another customer's are not there."""
    code, other = "C1009871", "C1009872"  # no other test writes these customers
    now = datetime.now(timezone.utc)
    senders = []

    def record(sender, customer, channel, when, intent):
        senders.append(sender)
        conv = Conversation(sender_id=sender, session_start=when.timestamp(), channel=channel,
                            customer_code=customer, language="it", outcome="contained",
                            ended=True, turns=1, fallbacks=0, last_was_fallback=False,
                            handed_over=False, reviewed=False, started_at=when,
                            last_event_at=when, ended_at=when + timedelta(seconds=1))
        conv.intents.append(ConversationIntent(intent=intent, stage="self_care", count=1))
        return conv

    with session_scope() as db:
        db.add(record(f"cust-{uuid.uuid4().hex[:8]}", code, "web", now - timedelta(hours=1),
                      "check_bill"))
        db.add(record(f"cust-{uuid.uuid4().hex[:8]}", code, "whatsapp",
                      now - timedelta(days=1), "report_outage"))
        db.add(record(f"cust-{uuid.uuid4().hex[:8]}", code, "telegram",
                      now - timedelta(days=2), "submit_meter_reading"))
        db.add(record(f"cust-{uuid.uuid4().hex[:8]}", other, "web", now, "pay_bill"))
    context, page, errors = sign_in(browser, stack, "lucia", password_for(stack.desk_url, "lucia"))
    try:
        page.goto(f"{stack.desk_url}/console?customer_code={code}")
        loaded(page)
        expect(page.locator("#rows tr")).to_have_count(3)
        page.locator("#rows tr").first.get_by_role("link", name=code).click()
        page.wait_for_url(f"**/console/customers/{code}")
        loaded(page)
        rows = page.locator("#rows tr")
        expect(rows).to_have_count(3)
        channels = [rows.nth(i).locator("td").nth(1).inner_text() for i in range(3)]
        assert channels == ["web", "whatsapp", "telegram"]  # newest first
        expect(rows.nth(1)).to_contain_text("report_outage")
        assert page.locator("#channels .chip").all_inner_texts() == [
            "web", "whatsapp", "telegram"]
        expect(page.locator("#rows")).not_to_contain_text(other)
        expect(page.locator("#rows")).not_to_contain_text("pay_bill")
        assert f"customer_code={code}" in page.locator("#export-csv").get_attribute("href")
        assert not errors, errors
        page.screenshot(path=str(ARTIFACTS / "console-customer.png"), full_page=True)
    finally:
        context.close()
        with session_scope() as db:
            db.execute(delete(Conversation).where(Conversation.sender_id.in_(senders)))


def test_a_transcript_shows_entities_actions_the_handover_and_the_csat(stack, browser):
    """A conversation as the log holds it after a handover (the log's side is tested with a real
    handover in test_conversation_log): every kind of line is drawn for the CX lead."""
    sender = f"hand-{uuid.uuid4().hex[:8]}"
    start = datetime.now(timezone.utc) - timedelta(minutes=10)

    def at(seconds):
        return start + timedelta(seconds=seconds)

    conv = Conversation(sender_id=sender, session_start=start.timestamp(), channel="telegram",
                        language="it", outcome="handover", ended=True, turns=2, fallbacks=0,
                        last_was_fallback=False, handed_over=True,
                        handover_reason="request_human", handover_state="closed",
                        handover_wait_seconds=42, handover_handling_seconds=185, csat=2,
                        csat_comment="l'operatore è stato gentile ma lento", reviewed=False,
                        started_at=start, last_event_at=at(300), ended_at=at(300))
    conv.intents.append(ConversationIntent(intent="request_human", stage="conversation",
                                           count=1))
    conv.messages.extend([
        ConversationMessage(at=at(1), sender="customer", text="la lettura è 4821",
                            intent="submit_meter_reading", confidence=0.91,
                            entities='[{"entity": "reading", "value": "4821"}]'),
        ConversationMessage(at=at(2), sender="action", text="meter_reading_form"),
        ConversationMessage(at=at(3), sender="bot", text="Non riesco a registrarla."),
        ConversationMessage(at=at(4), sender="customer", text="voglio un operatore",
                            intent="request_human", confidence=0.97),
        ConversationMessage(at=at(5), sender="event",
                            text="handover: the conversation is with a person"),
        ConversationMessage(at=at(50), sender="agent", text="Buongiorno, sono qui per aiutarla",
                            agent="Giulia (agent)", handover=True),
        ConversationMessage(at=at(60), sender="customer", text="grazie", handover=True),
    ])
    with session_scope() as db:
        db.add(conv)
        db.flush()
        cid = conv.id
    context, page, errors = sign_in(browser, stack, "lucia", password_for(stack.desk_url, "lucia"))
    try:
        page.goto(f"{stack.desk_url}/console/conversations/{cid}")
        loaded(page)
        transcript = page.locator("#transcript")
        first = transcript.locator("li.customer").first
        expect(first.locator(".intent")).to_have_text("submit_meter_reading 91%")
        expect(first.locator(".entity")).to_have_text("reading=4821")
        expect(transcript.locator("li.action")).to_contain_text("meter_reading_form")
        expect(transcript.locator("li.event")).to_contain_text("with a person")
        agent = transcript.locator("li.agent")
        expect(agent.locator(".who")).to_have_text("Agent: Giulia (agent)")
        expect(agent.locator(".handover-mark")).to_have_text("with a person")
        expect(transcript.locator("li.customer.handover")).to_contain_text("grazie")
        expect(transcript.locator("li.handover")).to_have_count(2)
        facts = page.locator("#facts")
        expect(facts).to_contain_text("request_human · closed · wait 0:42 · handling 3:05")
        expect(page.locator("#outcome")).to_have_text("handed over")
        expect(page.locator("#csat")).to_contain_text("CSAT 2/5")
        expect(page.locator("#csat-comment")).to_have_text("l'operatore è stato gentile ma lento")
        assert not errors, errors
        page.screenshot(path=str(ARTIFACTS / "console-handover.png"), full_page=True)
    finally:
        context.close()
        with session_scope() as db:
            db.execute(delete(Conversation).where(Conversation.sender_id == sender))


def test_an_agent_cannot_open_the_console_in_the_browser(stack, browser):
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{stack.desk_url}/login")
        page.fill("#username", "giulia")
        page.fill("#password", password_for(stack.desk_url, "giulia"))
        page.click("#sign-in")
        page.wait_for_url("**/desk")  # an agent lands on the desk
        for path in ("/console", "/console/dashboard", "/console/customers/C1000001"):
            r = page.goto(f"{stack.desk_url}{path}")
            assert r.status == 403, path
            expect(page.locator("#forbidden")).to_contain_text("not for your role (agent)")
            assert page.locator("#rows, #transcript, #dashboard").count() == 0
        page.click("#forbidden a")
        page.wait_for_url("**/desk")
    finally:
        context.close()


def test_the_complaints_page_flags_the_late_ones(stack, browser):
    """A complaint 40 days old (general: 10 days late) leads the list, flagged with its
    indemnity; the dashboard shows the complaints answered on time."""
    from bot.crm import models as m
    from bot.crm.service import open_ticket

    ticket_id = open_ticket("C1000002", "complaint", "Il tecnico non si è presentato", "web",
                           description="Il tecnico non si è presentato").ticket_id
    try:
        with session_scope() as db:
            row = db.query(m.Ticket).filter(m.Ticket.ticket_id == ticket_id).one()
            row.opened_at = row.opened_at - timedelta(days=40)
        context, page, errors = sign_in(browser, stack, "lucia",
                                        password_for(stack.desk_url, "lucia"))
        page.click("#nav-complaints")
        page.wait_for_url("**/console/complaints")
        loaded(page)
        first = page.locator("#rows tr").first
        expect(first).to_have_attribute("data-ticket", ticket_id)
        expect(first).to_have_class("late")
        expect(first.locator(".late-flag")).to_have_text("late by 10 days")
        expect(first.locator(".indemnity")).to_have_text("€ 30.00")
        expect(page.locator("#summary")).to_contain_text("past the deadline")
        page.screenshot(path=str(ARTIFACTS / "console-complaints.png"), full_page=True)
        page.click("#nav-dashboard")
        expect(page.locator("#complaint-cards .card")).to_have_count(4)
        assert not errors, errors
        context.close()
    finally:
        with session_scope() as db:
            db.execute(delete(m.Ticket).where(m.Ticket.ticket_id == ticket_id))
