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

from tests.stack import CHANNEL_SECRETS, RATE_LIMIT

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
        lambda r: r.path == f"/v19.0/{PHONE_ID}/messages" and r.data().get("to") == wa_id)]


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
    requests = platform_api.sent(lambda q: q.data().get("to") == wa_id)
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


def test_whatsapp_duplicate_delivery_is_processed_once(stack, platform_api, wa_id):
    """(Delivered again after a restart: tests/integration/test_restarts.py.)"""
    message_id = f"wamid.{uuid.uuid4().hex}"
    assert wa_post(stack, wa_text(wa_id, "ciao", message_id)).status_code == 200
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


# --- Telegram --------------------------------------------------------------------------------

TELEGRAM_TOKEN = CHANNEL_SECRETS["TELEGRAM_TOKEN"]


@pytest.fixture
def chat_id():
    return int(str(uuid.uuid4().int)[:9])


def tg_update(chat_id: int, **content) -> dict:
    return {"update_id": int(str(uuid.uuid4().int)[:9]), **content}


def tg_message(chat_id: int, text: str | None = None, **extra) -> dict:
    message = {"message_id": 17, "date": 1732340000,
               "from": {"id": chat_id, "is_bot": False, "first_name": "Anna",
                        "language_code": "it"},
               "chat": {"id": chat_id, "first_name": "Anna", "type": "private"}, **extra}
    if text is not None:
        message["text"] = text
    return tg_update(chat_id, message=message)


def tg_post(stack, update, secret: str | None = CHANNEL_SECRETS["TELEGRAM_SECRET_TOKEN"],
            raw: bytes | None = None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    return httpx.post(f"{stack.rasa_url}/webhooks/telegram/webhook", headers=headers,
                      content=raw if raw is not None else json.dumps(update).encode(), timeout=60)


def tg_sent(platform_api, chat_id: int, method: str = "sendMessage") -> list[dict]:
    return [r.json() for r in platform_api.sent(
        lambda r: r.path == f"/bot{TELEGRAM_TOKEN}/{method}"
        and str(r.data().get("chat_id")) == str(chat_id))]


def test_telegram_text_gets_an_inline_keyboard(stack, platform_api, chat_id):
    assert tg_post(stack, tg_message(chat_id, "ciao")).status_code == 200
    requests = platform_api.sent(lambda r: str(r.data().get("chat_id")) == str(chat_id))
    assert [r.path for r in requests] == [f"/bot{TELEGRAM_TOKEN}/sendMessage"]
    assert requests[0].headers["Content-Type"] == "application/json"
    assert requests[0].json() == {
        "chat_id": str(chat_id),
        "text": "Ciao, sono l'assistente virtuale di Luce Nord Energia. Posso aiutarti con "
                "bollette, autolettura, guasti, pratiche e contratto. Cosa ti serve?",
        "reply_markup": {"inline_keyboard": [[{"text": title, "callback_data": payload}]
                                             for title, payload in MENU_IT]}}


def test_telegram_button_press_and_typed_number(stack, platform_api, chat_id):
    tg_post(stack, tg_message(chat_id, "ciao"))
    query_id = uuid.uuid4().hex
    press = tg_update(chat_id, callback_query={
        "id": query_id, "chat_instance": "-123",
        "from": {"id": chat_id, "is_bot": False, "first_name": "Anna"},
        "message": {"message_id": 18, "date": 1732340001,
                    "chat": {"id": chat_id, "type": "private"}, "text": "Cosa ti serve?"},
        "data": "/ticket_status"})
    assert tg_post(stack, press).status_code == 200
    assert user_intents(stack, str(chat_id))[-1] == "ticket_status"
    answered = platform_api.sent(lambda r: r.path == f"/bot{TELEGRAM_TOKEN}/answerCallbackQuery"
                                 and r.data() == {"callback_query_id": query_id})
    assert len(answered) == 1
    other = chat_id + 1
    tg_post(stack, tg_message(other, "ciao"))
    tg_post(stack, tg_message(other, "3"))
    assert user_texts(stack, str(other))[-1] == "/report_outage"


def test_telegram_wrong_or_missing_secret_token_is_refused(stack, platform_api, chat_id):
    assert tg_post(stack, tg_message(chat_id, "ciao"), secret="guess").status_code == 403
    assert tg_post(stack, tg_message(chat_id, "ciao"), secret=None).status_code == 403
    assert tg_sent(platform_api, chat_id) == []
    assert user_intents(stack, str(chat_id)) == []


def test_telegram_malformed_duplicate_and_media(stack, platform_api, chat_id):
    assert tg_post(stack, None, raw=b"{not json").status_code == 400
    update = tg_message(chat_id, "ciao")
    assert tg_post(stack, update).status_code == 200
    assert tg_post(stack, update).status_code == 200
    assert user_intents(stack, str(chat_id)) == ["greet"]
    voice = tg_message(chat_id, voice={"duration": 3, "mime_type": "audio/ogg",
                                       "file_id": "AwACAgQAAxkBAAIB", "file_unique_id": "AgAD",
                                       "file_size": 5120})
    assert tg_post(stack, voice).status_code == 200
    photo = tg_message(chat_id, photo=[{"file_id": "AgACAgQAAxkBAAIC", "file_unique_id": "AQAD",
                                        "file_size": 1203, "width": 90, "height": 67}])
    assert tg_post(stack, photo).status_code == 200
    texts = [m["text"] for m in tg_sent(platform_api, chat_id)]
    assert sum(UNSUPPORTED_IT in t for t in texts) == 2
    # an update of a kind the bot does not handle is acknowledged and ignored
    member = tg_update(chat_id, my_chat_member={"chat": {"id": chat_id, "type": "private"}})
    assert tg_post(stack, member).status_code == 200


# --- WhatsApp through Twilio -----------------------------------------------------------------

TWILIO_SID = CHANNEL_SECRETS["TWILIO_ACCOUNT_SID"]
TWILIO_AUTH = CHANNEL_SECRETS["TWILIO_AUTH_TOKEN"]


def twilio_post(stack, form: dict, auth_token: str | None = TWILIO_AUTH) -> httpx.Response:
    from twilio.request_validator import RequestValidator

    headers = {}
    if auth_token is not None:
        headers["X-Twilio-Signature"] = RequestValidator(auth_token).compute_signature(
            CHANNEL_SECRETS["TWILIO_WEBHOOK_URL"], form)
    return httpx.post(f"{stack.rasa_url}/webhooks/twilio/webhook", data=form, headers=headers,
                      timeout=60)


def twilio_form(sender: str, body: str, **extra) -> dict:
    return {"SmsMessageSid": "SM" + uuid.uuid4().hex, "NumMedia": "0", "ProfileName": "Anna",
            "SmsSid": "SM" + uuid.uuid4().hex, "WaId": sender.split("+")[-1],
            "SmsStatus": "received", "Body": body, "To": CHANNEL_SECRETS["TWILIO_NUMBER"],
            "NumSegments": "1", "MessageSid": "SM" + uuid.uuid4().hex,
            "AccountSid": TWILIO_SID, "From": sender, "ApiVersion": "2010-04-01", **extra}


def twilio_sent(platform_api, sender: str) -> list:
    return platform_api.sent(
        lambda r: r.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
        and r.form().get("To") == sender)


def test_twilio_whatsapp_numbered_options_and_signature(stack, platform_api, wa_id):
    sender = f"whatsapp:+{wa_id}"
    assert twilio_post(stack, twilio_form(sender, "ciao"), auth_token="wrong").status_code == 403
    assert twilio_post(stack, twilio_form(sender, "ciao"), auth_token=None).status_code == 403
    assert twilio_sent(platform_api, sender) == []
    assert twilio_post(stack, twilio_form(sender, "ciao")).status_code == 204
    [request] = twilio_sent(platform_api, sender)
    import base64
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(
        f"{TWILIO_SID}:{TWILIO_AUTH}".encode()).decode()
    assert request.form() == {
        "To": sender, "From": CHANNEL_SECRETS["TWILIO_NUMBER"],
        "Body": "Ciao, sono l'assistente virtuale di Luce Nord Energia. Posso aiutarti con "
                "bollette, autolettura, guasti, pratiche e contratto. Cosa ti serve?\n\n"
                + "\n".join(f"{i}. {title}" for i, (title, _) in enumerate(MENU_IT, 1))}
    twilio_post(stack, twilio_form(sender, "4"))
    assert user_texts(stack, sender)[-1] == "/ticket_status"
    other = sender + "9"
    image = twilio_form(other, "", NumMedia="1", MediaContentType0="image/jpeg",
                        MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/x/Media/y")
    assert twilio_post(stack, image).status_code == 204
    assert UNSUPPORTED_IT in twilio_sent(platform_api, other)[-1].form()["Body"]
    # a redelivery of the same message (same MessageSid) is ignored
    assert twilio_post(stack, image).status_code == 204
    assert len(twilio_sent(platform_api, other)) == 1


# --- Messenger -------------------------------------------------------------------------------

@pytest.fixture
def psid():
    """A page-scoped user id."""
    return str(uuid.uuid4().int)[:16]


def fb_event(psid: str, **content) -> dict:
    return {"object": "page", "entry": [{"id": "101234567890123", "time": 1732340000000,
                                         "messaging": [{"sender": {"id": psid},
                                                        "recipient": {"id": "101234567890123"},
                                                        "timestamp": 1732340000000, **content}]}]}


def fb_post(stack, payload, secret: str | None = CHANNEL_SECRETS["MESSENGER_APP_SECRET"],
            raw: bytes | None = None) -> httpx.Response:
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers["X-Hub-Signature"] = "sha1=" + hmac.new(secret.encode(), body,
                                                        hashlib.sha1).hexdigest()
        headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(secret.encode(), body,
                                                              hashlib.sha256).hexdigest()
    return httpx.post(f"{stack.rasa_url}/webhooks/facebook/webhook", content=body,
                      headers=headers, timeout=60)


def fb_sent(platform_api, psid: str) -> list:
    return platform_api.sent(lambda r: r.path.startswith("/v19.0/me/messages?")
                             and r.data().get("recipient") == {"id": psid})


def test_messenger_signature_quick_replies_and_attachments(stack, platform_api, psid):
    text = fb_event(psid, message={"mid": f"m_{uuid.uuid4().hex}", "text": "ciao"})
    assert fb_post(stack, text, secret="wrong-secret").status_code == 403
    assert fb_post(stack, text, secret=None).status_code == 403
    assert fb_post(stack, None, raw=b"{oops").status_code == 400
    assert fb_sent(platform_api, psid) == []
    assert fb_post(stack, text).status_code == 200
    assert fb_post(stack, text).status_code == 200  # the same mid again: ignored
    [request] = fb_sent(platform_api, psid)
    page_token = CHANNEL_SECRETS["MESSENGER_PAGE_TOKEN"]
    assert request.path == f"/v19.0/me/messages?access_token={page_token}"
    assert request.json() == {
        "messaging_type": "RESPONSE", "notification_type": "REGULAR", "recipient": {"id": psid},
        "message": {
            # "Parla con una persona" is over Messenger's 20 characters for a quick reply
            "text": "Ciao, sono l'assistente virtuale di Luce Nord Energia. Posso aiutarti con "
                    "bollette, autolettura, guasti, pratiche e contratto. Cosa ti serve?\n\n"
                    + "\n".join(f"{i}. {title}" for i, (title, _) in enumerate(MENU_IT, 1))}}
    quick = fb_event(psid, message={"mid": f"m_{uuid.uuid4().hex}", "text": "Stato pratica",
                                    "quick_reply": {"payload": "/ticket_status"}})
    assert fb_post(stack, quick).status_code == 200
    assert user_texts(stack, psid)[-1] == "/ticket_status"
    other = psid + "1"
    sticker = fb_event(other, message={"mid": f"m_{uuid.uuid4().hex}",
                                       "sticker_id": 369239263222822,
                                       "attachments": [{"type": "image", "payload": {
                                           "url": "https://scontent.example/sticker.png",
                                           "sticker_id": 369239263222822}}]})
    assert fb_post(stack, sticker).status_code == 200
    assert UNSUPPORTED_IT in fb_sent(platform_api, other)[-1].json()["message"]["text"]


# --- One customer across channels ------------------------------------------------------------

def plain_customer(exclude: set[str]) -> str:
    """A generated Italian family customer with an e-mail on file (for the one-time code)."""
    from sqlalchemy import select

    from bot.crm import models as m
    from bot.persistence.db import session_scope

    with session_scope() as s:
        codes = s.execute(select(m.Customer.customer_code).where(
            m.Customer.persona == "family", m.Customer.language == "it",
            m.Customer.vip.is_(False), m.Customer.email.is_not(None),
            m.Customer.customer_code >= "C1000100").order_by(m.Customer.customer_code)
        ).scalars().all()
    return next(c for c in codes if c not in exclude)


def test_customer_verified_on_whatsapp_is_one_customer_with_the_web(stack, platform_api, wa_id,
                                                                     sender, token):
    from bot.crm.card import read_identity_card
    from bot.crm.service import customer_for_identity

    code = plain_customer(set())
    card = read_identity_card(code)
    wa_post(stack, wa_text(wa_id, "quanto devo pagare?"))
    wa_post(stack, wa_text(wa_id, code))
    assert "codice di verifica" in wa_texts(platform_api, wa_id)
    wa_post(stack, wa_text(wa_id, stack.code_sent_to(card.email)))
    assert customer_for_identity("whatsapp", wa_id) == code
    assert card.first_name in wa_texts(platform_api, wa_id)
    # the customer asks for a person on WhatsApp: an unresolved contact (a handover)
    wa_post(stack, wa_text(wa_id, "voglio parlare con un operatore"))
    wa_post(stack, wa_text(wa_id, "annulla"))
    # on the website, logged in, the bot mentions it
    reply = stack.say(sender, "ciao", token(code))
    assert "su WhatsApp" in reply and "non risulta chiusa" in reply
    stack.say(sender, "che tariffa ho?", token(code))
    channels = {(i.channel, i.conversation_id) for i in read_identity_card(code).interactions}
    assert ("whatsapp", wa_id) in channels and ("web", sender) in channels
    # the WhatsApp identity stays linked: a new message there needs no verification
    before = len(wa_sent(platform_api, wa_id))
    wa_post(stack, wa_text(wa_id, "che tariffa ho?"))
    later = "\n".join(m["text"]["body"] for m in wa_sent(platform_api, wa_id)[before:]
                      if m["type"] == "text")
    assert card.supplies[0].supply_id in later and "codice cliente" not in later


def test_an_agent_reply_reaches_a_whatsapp_customer_in_whatsapp(stack, platform_api, wa_id):
    """The live handover on a messaging app: the desk's reply goes out through the Graph API."""
    import time

    from tests.integration.desk_client import Agent
    from tests.integration.test_handover import _reset

    def wait_for(fragment: str) -> None:
        deadline = time.monotonic() + 30
        while fragment not in wa_texts(platform_api, wa_id):
            assert time.monotonic() < deadline, wa_texts(platform_api, wa_id)
            time.sleep(0.2)

    _reset()
    try:
        agent = Agent(stack.desk_url, "sara")
        agent.presence("online")
        assert wa_post(stack, wa_text(wa_id, "voglio parlare con un operatore")).status_code == 200
        wait_for("in coda")
        row = agent.wait_in_queue(wa_id)
        assert row["channel"] == "whatsapp"
        assert agent.post(f"/api/handovers/{row['id']}/claim").status_code == 200
        reply = {"text": "Buongiorno, sono Sara del servizio clienti."}
        assert agent.post(f"/api/handovers/{row['id']}/messages", reply).status_code == 200
        wait_for("sono Sara del servizio clienti")
        assert agent.post(f"/api/handovers/{row['id']}/handback").status_code == 200
        wait_for("di nuovo l'assistente virtuale")
    finally:
        _reset()


def test_a_picture_inside_a_form_gets_the_polite_reply_and_the_question_again(stack, platform_api,
                                                                              wa_id):
    wa_post(stack, wa_text(wa_id, "quanto devo pagare di bolletta?"))
    assert "codice cliente" in wa_texts(platform_api, wa_id)  # the verify form asks
    asked = len(wa_sent(platform_api, wa_id))
    picture = wa_message(wa_id, {"type": "image", "image": {
        "mime_type": "image/jpeg", "sha256": "a1b2", "id": "1479537139650973"}})
    assert wa_post(stack, picture).status_code == 200
    after = "\n".join(m.get("text", {}).get("body", "") or m.get("interactive", {}).get(
        "body", {}).get("text", "") for m in wa_sent(platform_api, wa_id)[asked:])
    assert UNSUPPORTED_IT in after and "codice cliente" in after
    assert "non sembra un codice cliente" not in after  # the picture filled nothing
    tracker = stack.tracker(wa_id)
    assert tracker["active_loop"]["name"] == "verify_form"
    assert tracker["slots"]["code_input"] is None
