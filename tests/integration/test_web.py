"""The demo page (bot/site, web/) in headless Chromium (Debian's chromium, driven by Playwright):
the chat widget holds a conversation anonymously and signed in as a demo customer, quick replies
are clicked, a reload keeps the conversation, bot text is shown as text; and the demo sign-in
gives tokens to the demo customers only."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from bot.tokens import customer_from_token
from tests.stack import RASA_TOKEN

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script><b>bold</b>'
BOT = ".rw-conversation-container .rw-response"
CUSTOMER = ".rw-conversation-container .rw-client"


@pytest.fixture
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def session_id(page) -> str:
    """The conversation id of the widget's session (the part before the server's signature)."""
    stored = json.loads(page.evaluate("localStorage.getItem('chat_session')") or "{}")
    return (stored.get("session_id") or "").split(".")[0]


def send(page, text: str) -> None:
    page.fill(".rw-new-message", text)
    page.press(".rw-new-message", "Enter")


def push_bot_message(stack, conversation_id: str, text: str) -> None:
    """As the desk does with an agent's reply: a bot event through Rasa's HTTP API, sent to the
    conversation's latest channel."""
    r = httpx.post(f"{stack.rasa_url}/conversations/{conversation_id}/tracker/events",
                   params={"token": RASA_TOKEN, "output_channel": "latest",
                           "execute_side_effects": "true"},
                   json={"event": "bot", "text": text}, timeout=30)
    r.raise_for_status()


def test_anonymous_conversation_quick_reply_reload_and_text_only(stack, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_context().new_page()
    page.goto(f"{stack.site_url}/")
    assert page.get_attribute("html", "lang") == "it"
    expect(page.locator("#login-status")).to_have_text("Stai chattando come visitatore anonimo.")
    expect(page.locator(".demo-note")).to_contain_text("Questa è una demo")
    expect(page.locator(".rw-new-message")).to_have_attribute("placeholder", "Scrivi un messaggio…")
    # the widget's first message ("Ciao", not shown) gets the anonymous greeting and the menu
    expect(page.locator(BOT).first).to_contain_text("sono l'assistente virtuale", timeout=30_000)
    expect(page.locator(CUSTOMER)).to_have_count(0)
    page.locator(".rw-reply", has_text="Bollette").click()
    # from the customer's message until the reply: the page's indicator, then the widget's own
    expect(page.locator("#bot-working")).to_be_visible()
    expect(page.locator("#bot-working")).to_have_text("L'assistente sta scrivendo…")
    expect(page.locator(".rw-typing-indication")).to_be_visible()  # while the reply comes
    expect(page.locator(CUSTOMER).last).to_have_text("Bollette")
    expect(page.locator(BOT).last).to_contain_text("Qual è il codice cliente?",
                                                   timeout=30_000)
    expect(page.locator("#bot-working")).to_be_hidden()
    sid = session_id(page)
    assert sid

    # a reload: the same session, the history shown, and the conversation goes on
    page.reload()
    expect(page.locator(CUSTOMER).first).to_have_text("Bollette")
    expect(page.locator(BOT).first).to_contain_text("sono l'assistente virtuale")
    assert session_id(page) == sid
    send(page, "C1000001")
    expect(page.locator(CUSTOMER).last).to_have_text("C1000001")
    expect(page.locator(BOT).last).to_contain_text("codice di verifica di 6 cifre",
                                                   timeout=30_000)
    texts = [e.get("text") for e in stack.tracker(sid)["events"] if e["event"] == "user"]
    assert texts == ["Ciao", "/check_bill", "C1000001"]

    # what the bot (or an agent) sends is shown as text, never as HTML
    push_bot_message(stack, sid, HOSTILE)
    expect(page.locator(BOT).last).to_contain_text("<script>window.pwned=2</script>")
    assert page.evaluate("window.pwned") is None
    assert page.locator(f"{BOT} img, {BOT} script, {BOT} b").count() == 0
    page.screenshot(path=str(ARTIFACTS / f"web-anonymous-{stack.profile}.png"), full_page=True)


# The demo sign-in exists only with the demo (production answers 404: tests/security).
@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_signed_in_demo_customer_is_greeted_by_name_in_english_page(stack, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_context().new_page()
    page.goto(f"{stack.site_url}/en")
    assert page.get_attribute("html", "lang") == "en"
    expect(page.locator(BOT).first).to_contain_text("I'm Luce Nord Energia's virtual assistant",
                                                    timeout=30_000)
    anonymous_session = session_id(page)
    page.select_option("#demo-customer", "C1000001")
    page.click("#demo-login-button")
    expect(page.locator("#login-status")).to_have_text("Signed in as Maria Rossi")
    expect(page.locator("#demo-login-button")).to_be_hidden()
    expect(page.locator("#logout-button")).to_be_visible()
    # a new conversation, as Maria: her profile's language (Italian) and her overdue bill
    expect(page.locator(BOT).first).to_contain_text("Ciao Maria", timeout=30_000)
    expect(page.locator(BOT).nth(1)).to_contain_text("Vuoi il link per pagarla ora?")
    sid = session_id(page)
    assert sid and sid != anonymous_session
    send(page, "sì")
    expect(page.locator(CUSTOMER).last).to_have_text("sì")
    expect(page.locator(BOT).last).to_contain_text("pay.lucenordenergia.example",
                                                   timeout=30_000)
    history = page.locator(BOT).all_inner_texts()

    page.reload()
    expect(page.locator("#login-status")).to_have_text("Signed in as Maria Rossi")
    expect(page.locator(CUSTOMER).last).to_have_text("sì")
    # every message shown before the reload is shown again, in order
    expect(page.locator(BOT).nth(len(history) - 1)).to_be_visible()
    assert page.locator(BOT).all_inner_texts()[:len(history)] == history
    assert session_id(page) == sid
    tracker = stack.tracker(sid)
    assert tracker["slots"]["customer_code"] == "C1000001"
    assert tracker["slots"]["verified"] is True
    page.screenshot(path=str(ARTIFACTS / f"web-signed-in-{stack.profile}.png"), full_page=True)

    page.click("#logout-button")
    expect(page.locator("#login-status")).to_have_text("You are chatting as an anonymous visitor.")
    expect(page.locator(BOT).first).to_contain_text("I'm Luce Nord Energia's virtual assistant",
                                                    timeout=30_000)
    assert session_id(page) not in ("", sid)


# The demo sign-in exists only with the demo (production answers 404: tests/security).
@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_demo_login_signs_demo_customers_only(stack):
    url = f"{stack.site_url}/demo-login"
    ok = httpx.post(url, json={"customer_code": "C1000004"})
    assert ok.status_code == 200
    assert ok.json()["name"] == "John Smith"
    assert customer_from_token(ok.json()["token"]) == "C1000004"
    assert httpx.post(url, json={"customer_code": "C1000100"}).status_code == 403  # generated
    assert httpx.post(url, json={"customer_code": "' OR 1=1 --"}).status_code == 403
    assert httpx.post(url, json={}).status_code == 400
    assert httpx.post(url, content=b"not json",
                      headers={"content-type": "application/json"}).status_code == 400
    page = httpx.get(f"{stack.site_url}/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert httpx.get(f"{stack.site_url}/vendor/rasa-webchat.js").status_code == 200
