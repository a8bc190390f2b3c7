"""The messaging apps end to end: the platforms' documented webhook payloads posted to the
running Rasa server, and the exact requests its connectors send to the platforms' APIs (a local
server playing them, tests/integration/platform_api.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

import httpx
import pytest

from tests.integration.conftest import CHANNEL_SECRETS, RATE_LIMIT

pytestmark = pytest.mark.integration

PHONE_ID = CHANNEL_SECRETS["WHATSAPP_PHONE_NUMBER_ID"]
MENU_IT = [("Bollette", "/check_bill"), ("Autolettura", "/submit_meter_reading"),
           ("Segnala un guasto", "/report_outage"), ("Stato pratica", "/ticket_status"),
           ("Parla con una persona", "/request_human")]
UNSUPPORTED_IT = "Per ora leggo solo messaggi scritti"
UNSUPPORTED_EN = "For now I can only read written messages"


# --- WhatsApp Business Cloud API -----------------------------------------------------------

@pytest.fixture
def wa_id():
    """A WhatsApp user id (the phone number in international format, digits only)."""
    return "39" + str(uuid.uuid4().int)[:10]


def wa_envelope(value: dict) -> dict:
    return {"object": "whatsapp_business_account", "entry": [{
        "id": "102290129340398",
        "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID},
            **value}}]}]}


def wa_message(wa_id: str, content: dict, message_id: str | None = None) -> dict:
    message = {"from": wa_id, "id": message_id or f"wamid.{uuid.uuid4().hex}",
               "timestamp": "1732340000", **content}
    return wa_envelope({"contacts": [{"profile": {"name": "Cliente"}, "wa_id": wa_id}],
                        "messages": [message]})


def wa_text(wa_id: str, text: str, message_id: str | None = None) -> dict:
    return wa_message(wa_id, {"type": "text", "text": {"body": text}}, message_id)


def wa_post(stack, payload, secret: str | None = CHANNEL_SECRETS["WHATSAPP_APP_SECRET"],
            raw: bytes | None = None, signature: str | None = None) -> httpx.Response:
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    elif secret is not None:
        headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(secret.encode(), body,
                                                              hashlib.sha256).hexdigest()
    return httpx.post(f"{stack.rasa_url}/webhooks/whatsapp/webhook", content=body,
                      headers=headers, timeout=60)


def wa_sent(platform_api, wa_id: str) -> list[dict]:
    """The message bodies sent to the Graph API for this user, in order."""
    return [r.json() for r in platform_api.sent(
        lambda r: r.path == f"/v19.0/{PHONE_ID}/messages" and r.json().get("to") == wa_id)]


def wa_texts(platform_api, wa_id: str) -> str:
    parts = []
    for m in wa_sent(platform_api, wa_id):
        if m["type"] == "text":
            parts.append(m["text"]["body"])
        elif m["type"] == "interactive":
            parts.append(m["interactive"]["body"]["text"])
    return "\n".join(parts)


def user_intents(stack, sender: str) -> list[str]:
    return [e["parse_data"]["intent"]["name"] for e in stack.tracker(sender)["events"]
            if e["event"] == "user"]


def test_whatsapp_webhook_verification(stack):
    url = f"{stack.rasa_url}/webhooks/whatsapp/webhook"
    ok = httpx.get(url, params={"hub.mode": "subscribe", "hub.challenge": "1158201444",
                                "hub.verify_token": CHANNEL_SECRETS["WHATSAPP_VERIFY_TOKEN"]})
    assert (ok.status_code, ok.text) == (200, "1158201444")
    wrong = httpx.get(url, params={"hub.mode": "subscribe", "hub.challenge": "1158201444",
                                   "hub.verify_token": "guess"})
    assert wrong.status_code == 403 and "1158201444" not in wrong.text


def test_whatsapp_text_gets_the_menu_as_a_list(stack, platform_api, wa_id):
    r = wa_post(stack, wa_text(wa_id, "ciao"))
    assert r.status_code == 200
    requests = platform_api.sent(lambda q: q.body and json.loads(q.body).get("to") == wa_id)
    assert len(requests) == 1
    request = requests[0]
    assert request.path == f"/v19.0/{PHONE_ID}/messages"
    assert request.headers["Authorization"] == f"Bearer {CHANNEL_SECRETS['WHATSAPP_TOKEN']}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": wa_id,
        "type": "interactive", "interactive": {
            "type": "list",
            "body": {"text": "Ciao, sono l'assistente virtuale di Luce Nord Energia. Posso "
                             "aiutarti con bollette, autolettura, guasti, pratiche e contratto. "
                             "Cosa ti serve?"},
            "action": {"button": "Menu", "sections": [{"rows": [
                {"id": payload, "title": title} for title, payload in MENU_IT]}]}}}


def user_texts(stack, sender: str) -> list[str]:
    return [e["text"] for e in stack.tracker(sender)["events"] if e["event"] == "user"]


def test_whatsapp_list_reply_and_button_reply(stack, platform_api, wa_id):
    wa_post(stack, wa_text(wa_id, "ciao"))
    r = wa_post(stack, wa_message(wa_id, {"type": "interactive", "interactive": {
        "type": "list_reply", "list_reply": {"id": "/ticket_status", "title": "Stato pratica"}}}))
    assert r.status_code == 200
    assert user_intents(stack, wa_id)[-1] == "ticket_status"
    assert "codice cliente" in wa_texts(platform_api, wa_id)
    r = wa_post(stack, wa_message(wa_id + "2", {"type": "interactive", "interactive": {
        "type": "button_reply", "button_reply": {"id": "/greet", "title": "Ciao"}}}))
    assert r.status_code == 200
    assert user_intents(stack, wa_id + "2") == ["greet"]


def test_whatsapp_typed_number_or_title_picks_an_option(stack, platform_api, wa_id):
    wa_post(stack, wa_text(wa_id, "ciao"))
    wa_post(stack, wa_text(wa_id, "2"))
    assert user_texts(stack, wa_id)[-1] == "/submit_meter_reading"
    other = wa_id + "1"
    wa_post(stack, wa_text(other, "ciao"))
    wa_post(stack, wa_text(other, "segnala un guasto"))
    assert user_texts(stack, other)[-1] == "/report_outage"
    # the options answer only the next message: a later "4" is just text
    wa_post(stack, wa_text(other, "4"))
    assert user_texts(stack, other)[-1] == "4"


def test_whatsapp_bad_or_missing_signature_is_refused_and_never_processed(stack, platform_api,
                                                                          wa_id):
    payload = wa_text(wa_id, "ciao")
    assert wa_post(stack, payload, secret="not-the-app-secret").status_code == 403
    assert wa_post(stack, payload, secret=None).status_code == 403
    assert wa_post(stack, payload, signature="sha256=" + "0" * 64).status_code == 403
    assert wa_post(stack, payload, signature="garbage").status_code == 403
    assert wa_sent(platform_api, wa_id) == []
    assert user_intents(stack, wa_id) == []


def test_whatsapp_malformed_json_is_400(stack, platform_api):
    assert wa_post(stack, None, raw=b'{"object": "whatsapp_business_account", ').status_code == 400
    assert wa_post(stack, None, raw=b"[1, 2]").status_code == 400


def test_whatsapp_status_updates_are_ignored(stack, platform_api, wa_id):
    payload = wa_envelope({"statuses": [{
        "id": "wamid.HBgLMzkzMzMxMjM0NTY3FQIAERgSQzQ2RjhGMjU0NUU4N0U2QTI2AA==",
        "status": "delivered", "timestamp": "1732340001", "recipient_id": wa_id,
        "conversation": {"id": "0a1b2c3d", "origin": {"type": "service"}},
        "pricing": {"billable": True, "pricing_model": "CBP", "category": "service"}}]})
    assert wa_post(stack, payload).status_code == 200
    assert wa_sent(platform_api, wa_id) == []
    assert user_intents(stack, wa_id) == []


def test_whatsapp_duplicate_delivery_is_processed_once_even_after_a_restart(
        stack, platform_api, wa_id):
    message_id = f"wamid.{uuid.uuid4().hex}"
    assert wa_post(stack, wa_text(wa_id, "ciao", message_id)).status_code == 200
    assert wa_post(stack, wa_text(wa_id, "ciao", message_id)).status_code == 200
    assert len(wa_sent(platform_api, wa_id)) == 1
    assert user_intents(stack, wa_id) == ["greet"]
    stack.restart("rasa")
    assert wa_post(stack, wa_text(wa_id, "ciao", message_id)).status_code == 200
    assert len(wa_sent(platform_api, wa_id)) == 1
    assert user_intents(stack, wa_id) == ["greet"]


@pytest.mark.parametrize("content", [
    {"type": "image", "image": {"caption": "la mia bolletta", "mime_type": "image/jpeg",
                                "sha256": "f3d9c1", "id": "1234567890"}},
    {"type": "audio", "audio": {"mime_type": "audio/ogg; codecs=opus", "sha256": "a1b2",
                                "id": "2345678901", "voice": True}},
    {"type": "location", "location": {"latitude": 45.4642, "longitude": 9.19,
                                      "name": "Duomo", "address": "Piazza del Duomo, Milano"}},
    {"type": "sticker", "sticker": {"mime_type": "image/webp", "sha256": "c3d4",
                                    "id": "3456789012", "animated": False}},
    {"type": "document", "document": {"caption": "contratto", "filename": "contratto.pdf",
                                      "mime_type": "application/pdf", "sha256": "e5f6",
                                      "id": "4567890123"}},
    {"type": "unsupported", "errors": [{"code": 131051, "title": "Message type unknown",
                                        "message": "Message type unknown",
                                        "error_data": {"details": "Message type is currently "
                                                                  "not supported."}}]},
    {"type": "reaction", "reaction": {"message_id": "wamid.abc", "emoji": "\U0001F44D"}},
])
def test_whatsapp_non_text_messages_get_a_polite_reply(stack, platform_api, wa_id, content):
    assert wa_post(stack, wa_message(wa_id, content)).status_code == 200
    assert UNSUPPORTED_IT in wa_texts(platform_api, wa_id)


def test_whatsapp_non_text_reply_follows_the_customer_language(stack, platform_api, wa_id):
    wa_post(stack, wa_text(wa_id, "Hello, I have a question about my electricity bill"))
    wa_post(stack, wa_message(wa_id, {"type": "audio", "audio": {
        "mime_type": "audio/ogg; codecs=opus", "sha256": "a1b2", "id": "2345678901"}}))
    assert UNSUPPORTED_EN in wa_texts(platform_api, wa_id)


def test_whatsapp_flood_from_one_sender_is_dropped_others_unaffected(stack, platform_api, wa_id):
    for i in range(RATE_LIMIT + 5):
        assert wa_post(stack, wa_text(wa_id, "ciao")).status_code == 200
    assert len(user_intents(stack, wa_id)) == RATE_LIMIT
    other = wa_id + "7"
    wa_post(stack, wa_text(other, "ciao"))
    assert user_intents(stack, other) == ["greet"]


# --- REST: rate limit and size ---------------------------------------------------------------

def test_rest_flood_from_one_sender_gets_429_others_unaffected(stack, sender):
    url = f"{stack.rasa_url}/webhooks/rest/webhook"
    codes = [httpx.post(url, json={"sender": sender, "message": "ciao"}, timeout=60).status_code
             for _ in range(RATE_LIMIT + 3)]
    assert codes == [200] * RATE_LIMIT + [429] * 3
    r = httpx.post(url, json={"sender": f"{sender}-other", "message": "ciao"}, timeout=60)
    assert r.status_code == 200 and r.json()


def test_rest_request_over_the_size_limit_gets_413(stack, sender):
    r = httpx.post(f"{stack.rasa_url}/webhooks/rest/webhook", timeout=60,
                   json={"sender": sender, "message": "x" * 70000})
    assert r.status_code == 413
    assert user_intents(stack, sender) == []
