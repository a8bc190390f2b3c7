"""The messaging apps' webhooks without a stack (connectors.pipeline): each app's route handlers
called with the platform's requests, the messages they give Rasa and the requests they send to
the platform's API. The same webhooks end to end: tests/integration/test_messaging.py."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from types import SimpleNamespace
from typing import Any, Optional
from urllib.parse import urlencode

import httpx
import pytest

SECRET = "app-secret-for-tests"
TWILIO_URL = "https://bot.example/webhooks/twilio/webhook"


class Headers(dict):
    """Header lookup without regard to case, like Sanic's."""

    def get(self, key: str, default: Any = None) -> Any:
        for k, v in self.items():
            if k.lower() == key.lower():
                return v
        return default


def request(body: bytes = b"", headers: Optional[dict] = None, args: Optional[dict] = None,
            method: str = "POST") -> SimpleNamespace:
    return SimpleNamespace(body=body, headers=Headers(headers or {}), args=args or {},
                           method=method, url=TWILIO_URL)


def route(channel, uri: str, method: str, received: list):
    async def on_new_message(message) -> None:
        received.append(message)

    bp = channel.blueprint(on_new_message)
    [handler] = [r.handler for r in bp._future_routes if r.uri == uri and method in r.methods]
    return handler


def call(channel, req, received: list, uri: str = "/webhook"):
    return asyncio.run(route(channel, uri, req.method, received)(req))


@pytest.fixture
def sent(monkeypatch):
    """The requests the connectors send to the platforms' APIs (answered 200)."""
    requests: list = []

    async def post(self, url, **kwargs):
        auth = kwargs.pop("auth", None) or self.auth  # given to the request or to the client
        if isinstance(auth, tuple):
            auth = httpx.BasicAuth(*auth)
        if auth is not None:
            kwargs["headers"] = {**kwargs.get("headers", {}), "Authorization": next(
                auth.sync_auth_flow(httpx.Request("POST", url))).headers["Authorization"]}
        requests.append(SimpleNamespace(url=str(url), **kwargs))
        return httpx.Response(200, text="{}")

    monkeypatch.setattr(httpx.AsyncClient, "post", post)
    return requests


@pytest.fixture
def channels(sqlite_db, monkeypatch, sent):
    """The four messaging channels with the settings of the tests (rate limit 3 a minute)."""
    import bot.ratelimit
    from bot.settings import reset_settings

    monkeypatch.setenv("RATE_LIMIT_MESSAGES", "3")
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("WHATSAPP_API_URL", "https://wa.example/v19.0")
    monkeypatch.setenv("TELEGRAM_API_URL", "https://tg.example")
    monkeypatch.setenv("TWILIO_API_URL", "https://tw.example")
    reset_settings()
    monkeypatch.setattr(bot.ratelimit, "_limiter", None)
    from connectors.messenger import MessengerInput
    from connectors.telegram import TelegramInput
    from connectors.twilio import TwilioInput
    from connectors.whatsapp import WhatsAppInput

    yield SimpleNamespace(
        whatsapp=WhatsAppInput("verify-me", SECRET, "wa-token", "1234"),
        telegram=TelegramInput("tg-token", "sportello_bot", None, SECRET),
        twilio=TwilioInput("AC123", SECRET, "whatsapp:+15550001111", webhook_url=TWILIO_URL),
        messenger=MessengerInput("verify-me", SECRET, "page-token"))
    reset_settings()


# --- WhatsApp --------------------------------------------------------------------------------

def wa_body(sender: str, content: dict, message_id: Optional[str] = None) -> bytes:
    message = {"from": sender, "id": message_id or f"wamid.{uuid.uuid4().hex}",
               "timestamp": "1732340000", **content}
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp",
                                        "messages": [message]}}]}]}).encode()


def wa_request(body: bytes, secret: Optional[str] = SECRET) -> SimpleNamespace:
    headers = {}
    if secret is not None:
        headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(
            secret.encode(), body, hashlib.sha256).hexdigest()
    return request(body, headers)


def test_whatsapp_signature_json_and_acknowledgement(channels):
    received: list = []
    body = wa_body("393331234567", {"type": "text", "text": {"body": "ciao"}})
    for req in (wa_request(body, "wrong"), wa_request(body, None)):
        r = call(channels.whatsapp, req, received)
        assert (r.status, r.body) == (403, b"invalid signature")
    for raw in (b'{"object": ', b"[1, 2]"):
        r = call(channels.whatsapp, wa_request(raw), received)
        assert (r.status, r.body) == (400, b"malformed JSON")
    assert received == []
    r = call(channels.whatsapp, wa_request(body), received)
    assert (r.status, r.body) == (200, b"ok")
    [message] = received
    assert (message.text, message.sender_id, message.input_channel) == (
        "ciao", "393331234567", "whatsapp")
    assert set(message.metadata) == {"whatsapp_message_id"}
    assert message.output_channel.name() == "whatsapp"


def test_whatsapp_subscription_check(channels):
    args = {"hub.mode": "subscribe", "hub.challenge": "42", "hub.verify_token": "verify-me"}
    r = call(channels.whatsapp, request(args=args, method="GET"), [])
    assert (r.status, r.body) == (200, b"42")
    for wrong in ({**args, "hub.verify_token": "guess"}, {**args, "hub.mode": "unsubscribe"}):
        assert call(channels.whatsapp, request(args=wrong, method="GET"), []).status == 403
    health = call(channels.whatsapp, request(method="GET"), [], uri="/")
    assert json.loads(health.body) == {"status": "ok"}


def test_whatsapp_duplicates_rate_limit_media_and_unsafe_senders(channels):
    received: list = []
    body = wa_body("393331234567", {"type": "text", "text": {"body": "ciao"}}, "wamid.same")
    call(channels.whatsapp, wa_request(body), received)
    call(channels.whatsapp, wa_request(body), received)
    assert len(received) == 1
    for _ in range(4):
        call(channels.whatsapp, wa_request(wa_body(
            "393331234567", {"type": "text", "text": {"body": "ancora"}})), received)
    assert len(received) == 3  # the rate limit: 3 a minute
    image = wa_body("393339999999", {"type": "image", "image": {"id": "1"}})
    assert call(channels.whatsapp, wa_request(image), received).status == 200
    assert received[-1].text == "/nlu_fallback"
    assert received[-1].metadata["unsupported_media"] == "image"
    unsafe = wa_body("39/../x", {"type": "text", "text": {"body": "ciao"}})
    assert call(channels.whatsapp, wa_request(unsafe), received).status == 200
    assert len(received) == 4


def test_whatsapp_numbered_options_and_replies(channels, sent):
    from connectors.whatsapp import WhatsAppOutput

    received: list = []
    out = channels.whatsapp.get_output_channel()
    assert isinstance(out, WhatsAppOutput)
    buttons = [{"title": title, "payload": payload} for title, payload in (
        ("Bollette", "/check_bill"), ("Autolettura", "/submit_meter_reading"),
        ("Segnala un guasto", "/report_outage"), ("Stato pratica", "/ticket_status"))]
    asyncio.run(out.send_text_with_buttons("393331234567", "Scegli", buttons))
    [list_request] = sent
    assert list_request.url == "https://wa.example/v19.0/1234/messages"
    assert list_request.headers == {"Authorization": "Bearer wa-token"}
    assert list_request.json["interactive"]["type"] == "list"
    call(channels.whatsapp, wa_request(wa_body(
        "393331234567", {"type": "text", "text": {"body": "2"}})), received)
    assert received[-1].text == "/submit_meter_reading"
    asyncio.run(out.send_text_message("393331234567", "x" * 5000))
    assert [len(r.json["text"]["body"]) for r in sent[1:]] == [4096, 904]


# --- Telegram --------------------------------------------------------------------------------

def tg_request(update: dict, secret: Optional[str] = SECRET) -> SimpleNamespace:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    return request(json.dumps(update).encode(), headers)


def tg_message(chat_id: int, **content) -> dict:
    return {"update_id": int(str(uuid.uuid4().int)[:9]), "message": {
        "message_id": 1, "chat": {"id": chat_id, "type": "private"}, **content}}


def test_telegram_secret_token_json_start_and_media(channels):
    received: list = []
    update = tg_message(4242, text="/start")
    for req in (tg_request(update, "wrong"), tg_request(update, None)):
        r = call(channels.telegram, req, received)
        assert (r.status, r.body) == (403, b"forbidden")
    r = call(channels.telegram, request(b"{oops", {"X-Telegram-Bot-Api-Secret-Token": SECRET}),
             received)
    assert (r.status, r.body) == (400, b"malformed JSON")
    r = call(channels.telegram, tg_request(update), received)
    assert (r.status, r.body) == (200, b"success")
    assert (received[-1].text, received[-1].sender_id, received[-1].metadata) == (
        "/greet", "4242", None)
    call(channels.telegram, tg_request(update), received)  # the same update_id again
    assert len(received) == 1
    call(channels.telegram, tg_request(tg_message(4242, voice={"file_id": "x"})), received)
    assert received[-1].metadata == {"unsupported_media": "voice"}
    member = {"update_id": 7, "my_chat_member": {"chat": {"id": 4242}}}
    assert call(channels.telegram, tg_request(member), received).status == 200
    assert len(received) == 2


def test_telegram_button_press_is_answered(channels, sent):
    received: list = []
    press = {"update_id": int(str(uuid.uuid4().int)[:9]), "callback_query": {
        "id": "q1", "data": "/ticket_status",
        "message": {"message_id": 2, "chat": {"id": 4343, "type": "private"}}}}
    assert call(channels.telegram, tg_request(press), received).status == 200
    assert received[-1].text == "/ticket_status"
    assert [(r.url, r.json) for r in sent] == [
        ("https://tg.example/bottg-token/answerCallbackQuery", {"callback_query_id": "q1"})]


# --- Twilio ----------------------------------------------------------------------------------

def twilio_request(form: dict, auth_token: Optional[str] = SECRET) -> SimpleNamespace:
    from twilio.request_validator import RequestValidator

    headers = {}
    if auth_token is not None:
        headers["X-Twilio-Signature"] = RequestValidator(auth_token).compute_signature(
            TWILIO_URL, form)
    return request(urlencode(form).encode(), headers)


def twilio_form(sender: str, body: str, **extra) -> dict:
    return {"MessageSid": "SM" + uuid.uuid4().hex, "NumMedia": "0", "Body": body,
            "From": sender, "To": "whatsapp:+15550001111", **extra}


def test_twilio_signature_senders_media_and_204(channels, sent):
    received: list = []
    form = twilio_form("whatsapp:+393331234567", "ciao")
    for req in (twilio_request(form, "wrong"), twilio_request(form, None)):
        r = call(channels.twilio, req, received)
        assert (r.status, r.body) == (403, b"invalid signature")
    r = call(channels.twilio, twilio_request(form), received)
    assert (r.status, r.body) == (204, b"")
    assert (received[-1].text, received[-1].metadata) == ("ciao", None)
    assert call(channels.twilio, twilio_request(form), received).status == 204  # duplicate
    assert len(received) == 1
    r = call(channels.twilio, twilio_request(twilio_form("whatsapp:+39/..", "ciao")), received)
    assert (r.status, r.body) == (400, b"invalid sender")
    assert call(channels.twilio, twilio_request(twilio_form("", "ciao")), received).status == 204
    image = twilio_form("whatsapp:+393330000000", "", NumMedia="1",
                        MediaContentType0="image/jpeg")
    call(channels.twilio, twilio_request(image), received)
    where = twilio_form("whatsapp:+393330000001", "", Latitude="45.4", Longitude="9.1")
    call(channels.twilio, twilio_request(where), received)
    assert [m.metadata for m in received[1:]] == [{"unsupported_media": "image"},
                                                 {"unsupported_media": "location"}]
    assert len(received) == 3


def test_twilio_sends_numbered_text_with_basic_auth(channels, sent):
    out = channels.twilio.get_output_channel()
    asyncio.run(out.send_text_with_buttons("whatsapp:+393331234567", "Scegli", [
        {"title": "Sì", "payload": "/affirm"}, {"title": "No", "payload": "/deny"}]))
    [r] = sent
    assert r.url == "https://tw.example/2010-04-01/Accounts/AC123/Messages.json"
    assert r.headers == {"Authorization": httpx.BasicAuth("AC123", SECRET)._auth_header}
    assert r.data == {"To": "whatsapp:+393331234567", "From": "whatsapp:+15550001111",
                      "Body": "Scegli\n\n1. Sì\n2. No"}


# --- Messenger -------------------------------------------------------------------------------

def fb_request(payload: Any, secret: Optional[str] = SECRET, raw: Optional[bytes] = None):
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {}
    if secret is not None:
        headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(
            secret.encode(), body, hashlib.sha256).hexdigest()
    return request(body, headers)


def fb_event(psid: str, **content) -> dict:
    return {"object": "page", "entry": [{"id": "1", "messaging": [
        {"sender": {"id": psid}, "recipient": {"id": "1"}, **content}]}]}


def test_messenger_signature_quick_replies_postbacks_echoes_and_attachments(channels):
    received: list = []
    text = fb_event("1234567890", message={"mid": "m_1", "text": "ciao"})
    assert call(channels.messenger, fb_request(text, "wrong"), received).status == 403
    assert call(channels.messenger, fb_request(None, raw=b"{oops"), received).status == 400
    r = call(channels.messenger, fb_request(text), received)
    assert (r.status, r.body) == (200, b"success")
    call(channels.messenger, fb_request(text), received)  # the same mid: ignored
    assert [(m.text, m.sender_id, m.input_channel) for m in received] == [
        ("ciao", "1234567890", "facebook")]
    quick = fb_event("1234567890", message={"mid": "m_2", "text": "Stato pratica",
                                            "quick_reply": {"payload": "/ticket_status"}})
    postback = fb_event("1234567891", postback={"title": "Bollette", "payload": "/check_bill"})
    echo = fb_event("1234567892", message={"mid": "m_3", "text": "hi", "is_echo": True})
    sticker = fb_event("1234567893", message={"mid": "m_4", "attachments": [
        {"type": "image", "payload": {"url": "https://x.example/s.png"}}]})
    for payload in (quick, postback, echo, sticker):
        assert call(channels.messenger, fb_request(payload), received).status == 200
    assert [(m.text, m.metadata) for m in received[1:]] == [
        ("/ticket_status", None), ("/check_bill", None),
        ("/nlu_fallback", {"unsupported_media": "image"})]
    args = {"hub.mode": "subscribe", "hub.challenge": "7", "hub.verify_token": "verify-me"}
    assert call(channels.messenger, request(args=args, method="GET"), []).body == b"7"
