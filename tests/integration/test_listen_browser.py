"""Listen in headless Chromium (Debian's chromium, driven by Playwright) on the real stack: the
CX lead opens it from the console's navigation, chooses a period and a language, sees the topics
largest first with their trend and examples and the other messages (a customer's HTML shown as
text), labels one topic with an intent, marks another as a missing skill and clears it again.
Screenshot in test-artifacts/listen.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.integration.desk_client import password_for
from tests.integration.test_console import marker
from tests.integration.test_console_browser import ARTIFACTS, browser, loaded  # noqa: F401
from tests.integration.test_listen import BEFORE, END, NOW, START, remove, seed

pytestmark = pytest.mark.integration
HOSTILE = '<img src=x onerror="window.pwned=1">'


def test_cx_lead_labels_topics_in_the_browser(stack, browser):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    solar, bonus = marker(), marker()
    senders = seed({"it": [(f"avete il {solar} per la casa?", "nlu_fallback", NOW),
                           (f"vorrei il {solar} sul tetto", "nlu_fallback", NOW),
                           (f"quanto costa il {solar}", "out_of_scope", NOW),
                           (f"il {solar} lo vendete?", "nlu_fallback", NOW),
                           (f"come richiedo il {bonus} sociale?", "nlu_fallback", NOW),
                           (f"il {bonus} sociale spetta a me?", "nlu_fallback", NOW),
                           (f"non mi avete dato il {bonus} sociale", "nlu_fallback", NOW),
                           (f"il {bonus} sociale", "nlu_fallback", BEFORE),
                           (f"{bonus} sociale?", "nlu_fallback", BEFORE),
                           (HOSTILE, "nlu_fallback", NOW)]})
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error"
            and "Failed to load resource" not in m.text else None)
    try:
        page.goto(f"{stack.desk_url}/console/listen")
        assert page.url.endswith("/login")  # not signed in: the login page
        page.fill("#username", "lucia")
        page.fill("#password", password_for(stack.desk_url, "lucia"))
        page.click("#sign-in")
        page.wait_for_url("**/console")
        loaded(page)
        page.click("#nav-listen")
        page.wait_for_url("**/console/listen*")
        asked: list[str] = []  # a label that changes several messages is asked first

        def answer(dialog) -> None:
            asked.append(dialog.message)
            dialog.accept()
        page.on("dialog", answer)
        loaded(page)
        expect(page.locator("#nav-listen")).to_have_attribute("aria-current", "page")

        page.fill("#l-from", str(START))
        page.fill("#l-to", str(END))
        page.select_option("#l-language", "it")
        page.click("#l-apply")
        expect(page.locator("#listen-summary")).to_contain_text(f"from {START} to {END}")
        loaded(page)
        topics = page.locator("#topics > li.topic")
        expect(topics).to_have_count(2)
        first, second = topics.nth(0), topics.nth(1)  # largest first
        expect(first.locator(".size")).to_have_text("4")
        expect(first.locator(".trend")).to_have_text("new (none before)")
        expect(first.locator(".topic-name")).to_contain_text(solar)
        expect(second.locator(".size")).to_have_text("3")
        expect(second.locator(".trend")).to_have_text("▲ +1 (2 before)")
        expect(second.locator(".examples li")).to_have_count(3)
        # each example opens its conversation; a customer's HTML is text (under "Other")
        expect(page.locator("#other-size")).to_have_text("1")
        expect(page.locator("#other-examples .example-link")).to_have_text(HOSTILE)
        assert page.evaluate("window.pwned") is None
        href = first.locator(".example-link").first.get_attribute("href")
        assert href.startswith("/console/conversations/")
        assert "from=2025-02-03" in page.url  # the address keeps the period

        # label the second topic with an intent
        second.locator(".label-intent").select_option("contract_info")
        second.locator(".label-save").click()
        loaded(page)
        labelled = page.locator("#topics > li.topic").nth(1)
        expect(labelled.locator(".topic-label")).to_have_text(
            "labelled: contract_info (3 of 3 messages)")
        # mark the first as a missing skill, then clear it
        page.locator("#topics > li.topic").nth(0).locator(".label-missing").click()
        loaded(page)
        marked = page.locator("#topics > li.topic").nth(0)
        expect(marked.locator(".topic-label")).to_have_text("marked: missing skill (4 of 4 "
                                                            "messages)")
        page.screenshot(path=str(ARTIFACTS / "listen.png"), full_page=True)
        marked.locator(".label-clear").click()
        loaded(page)
        expect(page.locator("#topics > li.topic").nth(0).locator(".topic-label")).to_have_text(
            "not labelled")
        expect(page.locator("#console-error")).to_have_text("")
        assert asked == [
            "Annotate the 3 messages of this topic with the intent contract_info? They go into "
            "the NLU training export.",
            "Mark the 4 messages of this topic as a missing skill? Their intent annotations are "
            "removed.",
            "Remove the label from the 4 messages of this topic?"]
        assert errors == []
    finally:
        context.close()
        remove(senders)
