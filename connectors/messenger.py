"""Facebook Messenger, `/webhooks/facebook/webhook`: Rasa's `facebook` channel, wrapped.

Rasa's channel checks `X-Hub-Signature` (HMAC-SHA1 with the app secret) but answers 200 to a
bad one; here a request whose `X-Hub-Signature-256` (or, failing that, `X-Hub-Signature`) is
wrong or missing gets 403 and is not read, and malformed JSON gets 400. Then Rasa's handling,
with these changes: a message id (`mid`) is processed once (shared database), the rate limit
per sender applies, text is normalised like on every channel, a typed "2" or option title picks
an option, and attachments (images, audio, video, files, stickers, locations) get the "what I
can handle" reply instead of their URL being read as text. Buttons: a button template (up to
3, titles up to 20 characters), quick replies (up to 13) or numbered text
(`connectors.options`; Rasa's own output drops more than 3 buttons). The Graph API base URL is
`MESSENGER_API_URL`.

credentials.yml:

    connectors.messenger.MessengerInput:
      verify: ${MESSENGER_VERIFY_TOKEN}
      secret: ${MESSENGER_APP_SECRET}
      page-access-token: ${MESSENGER_PAGE_TOKEN}
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any, Awaitable, Callable, Dict, Optional, Text

from fbmessenger import MessengerClient
from rasa.core.channels.channel import OutputChannel, UserMessage
from fbmessenger.elements import Text as FBText
from rasa.core.channels.facebook import FacebookInput, Messenger, MessengerBot
from sanic import Blueprint, response
from sanic.request import Request

from bot.channel_state import first_delivery
from bot.crm.service import run
from bot.settings import get_settings
from connectors.guard import allowed, limit_size, mask
from connectors.identity import safe_sender
from connectors.options import Layout, Limits, OptionsOutput, choose
from connectors.text import normalise

log = logging.getLogger(__name__)

CHANNEL = "facebook"


def client(page_access_token: str) -> MessengerClient:
    c = MessengerClient(page_access_token)
    c.graph_url = get_settings().messenger_api_url.rstrip("/")
    return c


def signature_ok(secret: str, body: bytes, headers) -> bool:
    if not secret:
        return False
    for header, algorithm in (("X-Hub-Signature-256", hashlib.sha256),
                              ("X-Hub-Signature", hashlib.sha1)):
        value = headers.get(header)
        if value:
            _, _, given = value.partition("=")
            expected = hmac.new(secret.encode(), body, algorithm).hexdigest()
            return hmac.compare_digest(expected, given.strip().lower())
    return False


class MessengerOutput(OptionsOutput, MessengerBot):
    limits = Limits(max_buttons=3, max_button_title=20, max_rows=13, max_row_title=20,
                    max_body=640)

    @classmethod
    def name(cls) -> Text:
        return CHANNEL

    async def send_layout(self, recipient_id: str, plan: Layout) -> None:
        buttons = [dict(o) for o in plan.options]
        if plan.kind == "buttons":
            await MessengerBot.send_text_with_buttons(self, recipient_id, plan.text, buttons)
        elif plan.kind == "list":
            await MessengerBot.send_quick_replies(self, recipient_id, plan.text, buttons)
        else:  # one message, so the numbers stay with the question
            for start in range(0, max(len(plan.text), 1), 2000):
                self.send(recipient_id, FBText(text=plan.text[start:start + 2000]))


class SportelloMessenger(Messenger):
    def __init__(self, page_access_token: str,
                 on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> None:
        super().__init__(page_access_token, on_new_message)
        self.client = client(page_access_token)

    async def message(self, message: Dict[Text, Any], metadata: Optional[Dict[Text, Any]]) -> None:
        sender = str(self.get_user_id())
        if safe_sender(sender) is None:
            log.warning("Messenger: a message from an unsafe sender id ignored")
            return
        body = message.get("message") or {}
        if body.get("is_echo"):
            return  # the page's own messages
        if body.get("mid") and not await run(first_delivery, CHANNEL, str(body["mid"])):
            log.info("Messenger: duplicate delivery ignored (from %s)", mask(sender))
            return
        if not await allowed(CHANNEL, sender):
            return
        metadata = dict(metadata or {})
        if self._is_quick_reply_message(message):
            text = body["quick_reply"]["payload"]
        elif self._is_user_message(message):
            text, flags = normalise(await choose(CHANNEL, sender, body["text"]))
            metadata.update(flags)
        else:
            attachments = body.get("attachments") or [{}]
            text = "/nlu_fallback"
            metadata["unsupported_media"] = str((attachments[0] or {}).get("type") or "unknown")
        await self._handle_user_message(text, sender, metadata or None)

    async def postback(self, message: Dict[Text, Any], metadata: Optional[Dict[Text, Any]]) -> None:
        sender = str(self.get_user_id())
        if safe_sender(sender) is not None and await allowed(CHANNEL, sender):
            await super().postback(message, metadata)

    async def _handle_user_message(self, text: Text, sender_id: Text,
                                   metadata: Optional[Dict[Text, Any]]) -> None:
        out = MessengerOutput(self.client)
        try:
            await self.on_new_message(UserMessage(text, out, sender_id, input_channel=CHANNEL,
                                                  metadata=metadata))
        except Exception:
            log.exception("Messenger: could not handle a message from %s", mask(sender_id))


class MessengerInput(FacebookInput):
    @classmethod
    def name(cls) -> Text:
        return CHANNEL

    def get_output_channel(self) -> OutputChannel:
        return MessengerOutput(client(self.fb_access_token))

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint("fb_webhook", __name__)
        limit_size(bp)

        @bp.route("/", methods=["GET"])
        async def health(_: Request):
            return response.json({"status": "ok"})

        @bp.route("/webhook", methods=["GET"])
        async def verify(request: Request):
            given = request.args.get("hub.verify_token") or ""
            if self.fb_verify and hmac.compare_digest(given, self.fb_verify):
                return response.text(request.args.get("hub.challenge") or "")
            return response.text("forbidden", status=403)

        @bp.route("/webhook", methods=["POST"])
        async def receive(request: Request):
            if not signature_ok(self.fb_secret or "", request.body or b"", request.headers):
                return response.text("invalid signature", status=403)
            try:
                payload = json.loads(request.body)
            except (ValueError, UnicodeDecodeError):
                return response.text("malformed JSON", status=400)
            if not isinstance(payload, dict):
                return response.text("malformed JSON", status=400)
            messenger = SportelloMessenger(self.fb_access_token, on_new_message)
            for entry in payload.get("entry") or []:
                for event in (entry or {}).get("messaging") or [] if isinstance(entry, dict) else []:
                    if not isinstance(event, dict) or not (event.get("sender") or {}).get("id"):
                        continue
                    messenger.last_message = event
                    try:
                        if event.get("message"):
                            await messenger.message(event, self.get_metadata(request))
                        elif event.get("postback"):
                            await messenger.postback(event, self.get_metadata(request))
                    except Exception:
                        log.exception("Messenger: could not handle an event")
            return response.text("success")

        return bp
