"""The desk in headless Chromium (Debian's chromium, driven by Playwright): an agent signs in
and goes online, a customer on the socket.io channel asks for a person, the conversation appears
in the queue without reloading, the agent claims it and sees the identity card and transcript
(customer HTML shown as text), replies, the customer receives it, the agent hands back and the
customer gets the feedback question."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import select

from bot.handover.models import DeskUser
from bot.persistence.db import session_scope
from tests.integration.desk_client import Customer, password_for
from tests.integration.test_handover import _reset

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script><b>bold</b>'


@pytest.fixture
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        yield b
        b.close()


def presence_of(username: str) -> str:
    with session_scope() as db:
        return db.execute(select(DeskUser.presence).where(DeskUser.username == username)).scalar()


def test_agent_handles_a_conversation_in_the_browser(stack, browser, token):
    _reset()
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page()
    page.goto(f"{stack.desk_url}/desk")
    assert page.url.endswith("/login")  # not signed in: sent to the login page
    page.fill("#username", "giulia")
    page.fill("#password", password_for(stack.desk_url, "giulia"))
    page.click("#sign-in")
    page.wait_for_url("**/desk")
    expect(page.locator("#connection")).to_have_text("live")
    page.select_option("#presence", "online")
    deadline = time.monotonic() + 10
    while presence_of("giulia") != "online" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert presence_of("giulia") == "online"

    customer = Customer(stack.rasa_url, {"customer_token": token("C1000001")})
    try:
        customer.say(HOSTILE)
        customer.say("voglio parlare con un operatore")
        item = page.locator("#queue li", has_text="Maria Rossi")
        expect(item).to_be_visible(timeout=10_000)  # arrived without a reload
        expect(item).to_contain_text("request_human")
        expect(item).to_contain_text("IT")
        assert "New customer waiting" in page.title()
        item.locator("button.claim").click()
        expect(page.locator("#conv-title")).to_have_text("Maria Rossi")
        expect(page.locator("#card")).to_contain_text("family")
        expect(page.locator("#card")).to_contain_text("Unpaid bills")
        transcript = page.locator("#transcript")
        expect(transcript).to_contain_text("voglio parlare con un operatore")
        # the customer's HTML is shown as text, never run or rendered
        expect(transcript).to_contain_text("<script>window.pwned=2</script>")
        assert page.evaluate("window.pwned") is None
        assert transcript.locator("b, img, script").count() == 0

        sent = time.monotonic()
        customer.say("sono ancora qui, grazie", wait_for_reply=False)
        expect(transcript).to_contain_text("sono ancora qui, grazie", timeout=5_000)
        shown_after = time.monotonic() - sent
        page.fill("#reply", "Buongiorno Maria, sono Giulia: vedo la bolletta scaduta.")
        page.click("#send")
        customer.wait_text("vedo la bolletta scaduta")
        expect(transcript).to_contain_text("vedo la bolletta scaduta")
        page.screenshot(path=str(ARTIFACTS / "desk-conversation.png"), full_page=True)
        page.click("#handback")
        expect(page.locator("#empty")).to_contain_text("Handed back")
        customer.wait_text("di nuovo l'assistente virtuale")
        customer.wait_text("Da 1 a 5")
        print(f"customer message on the agent's screen after {shown_after:.2f}s")
    finally:
        customer.close()
    page.close()  # the agent's browser goes away: offline after a short grace
    deadline = time.monotonic() + 20
    while presence_of("giulia") != "offline" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert presence_of("giulia") == "offline"
    _reset()
