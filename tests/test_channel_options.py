"""How buttons are shown on each messaging app (connectors.options) and the webhook signatures."""

from __future__ import annotations

import hashlib
import hmac

from connectors.options import layout, numbered
from connectors.telegram import TelegramOutput
from connectors.twilio import TwilioOutput
from connectors.whatsapp import WhatsAppOutput, signature_ok


def buttons(n: int, title: str = "Opzione {}") -> list[dict]:
    return [{"title": title.format(i), "payload": f"/intent_{i}"} for i in range(1, n + 1)]


def test_whatsapp_buttons_list_or_numbered_text():
    limits = WhatsAppOutput.limits
    assert layout("Scegli", buttons(3), limits).kind == "buttons"
    assert layout("Scegli", buttons(4), limits).kind == "list"
    assert layout("Scegli", buttons(10), limits).kind == "list"
    beyond = layout("Scegli", buttons(11), limits)
    assert beyond.kind == "text" and beyond.text.splitlines()[-1] == "11. Opzione 11"
    # a title over 20 characters cannot be a reply button, but fits a list row (24)
    assert layout("Scegli", buttons(2, "Parla con una persona{}"), limits).kind == "list"
    assert layout("Scegli", buttons(2, "Una voce davvero troppo lunga {}"), limits).kind == "text"
    # duplicate titles or a body over 1024 characters: numbered text
    assert layout("Scegli", buttons(2, "Uguale"), limits).kind == "text"
    assert layout("x" * 1025, buttons(2), limits).kind == "text"


def test_text_only_channels_number_the_options():
    plan = layout("Cosa ti serve?", buttons(2), TwilioOutput.limits)
    assert plan.kind == "text"
    assert plan.text == "Cosa ti serve?\n\n1. Opzione 1\n2. Opzione 2"
    assert [o["payload"] for o in plan.options] == ["/intent_1", "/intent_2"]
    assert numbered("", buttons(1)) == "1. Opzione 1"
    assert layout("Solo testo", None, TwilioOutput.limits).text == "Solo testo"


def test_telegram_shows_every_option_as_a_button():
    assert layout("Scegli", buttons(12), TelegramOutput.limits).kind == "buttons"


def test_whatsapp_signature():
    body = b'{"object":"whatsapp_business_account"}'
    good = "sha256=" + hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    assert signature_ok("secret", body, good)
    assert not signature_ok("secret", body + b" ", good)
    assert not signature_ok("other", body, good)
    assert not signature_ok("", body, good)
    assert not signature_ok("secret", body, None)
    assert not signature_ok("secret", body, good.replace("sha256=", "sha1="))
