"""WhatsApp Business Cloud API channel (Meta's Graph API), `/webhooks/whatsapp/webhook`.

Inbound (Meta's webhook):
- `GET` with `hub.mode=subscribe`, `hub.verify_token`, `hub.challenge`: the subscription check;
  the challenge is echoed when the verify token matches, 403 otherwise.
- `POST`: `X-Hub-Signature-256` must be `sha256=` + HMAC-SHA256 of the raw body with the app
  secret, or the request gets 403 and is not read. Malformed JSON gets 400. Text messages,
  interactive replies (`button_reply`, `list_reply`) and template quick replies (`button`) go to
  Rasa; images, audio, locations, stickers, documents and any other type are answered with the
  "what I can handle" reply; status callbacks are ignored. A message id is processed once: ids
  are kept in the shared database, so a redelivery after a restart or to another process is
  ignored too. Everything is acknowledged with 200 (Meta redelivers anything else).

Outbound: `POST {WHATSAPP_API_URL}/{phone_number_id}/messages` with the bearer token. Buttons
become reply buttons (up to 3, titles up to 20 characters), a list (up to 10 rows, titles up to
24) or numbered text beyond that (`connectors.options`).

credentials.yml:

    connectors.whatsapp.WhatsAppInput:
      verify_token: ${WHATSAPP_VERIFY_TOKEN}
      app_secret: ${WHATSAPP_APP_SECRET}
      access_token: ${WHATSAPP_TOKEN}
      phone_number_id: ${WHATSAPP_PHONE_NUMBER_ID}
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text

import httpx
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channel_state import first_delivery
from bot.crm.service import run
from bot.settings import get_settings
from connectors.guard import allowed, limit_size, mask
from connectors.identity import safe_sender
from connectors.options import Layout, Limits, OptionsOutput, choose
from connectors.text import normalise

log = logging.getLogger(__name__)

CHANNEL = "whatsapp"
TEXT_TYPES = {"text", "interactive", "button"}
MAX_TEXT = 4096
LIST_BUTTON = "Menu"  # the label of the button that opens a list: the same word in it and en


def signature_ok(secret: str, body: bytes, header: Optional[str]) -> bool:
    """Whether `header` is `sha256=<HMAC-SHA256 of body with secret>` (a missing secret or
    header never is)."""
    if not secret or not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[len("sha256="):].strip().lower())


def message_text(message: Dict[str, Any]) -> Optional[str]:
    """The text of a text or reply message; None for anything else (media, location, ...)."""
    kind = message.get("type")
    if kind == "text":
        body = (message.get("text") or {}).get("body")
        return body if isinstance(body, str) else ""
    if kind == "interactive":
        interactive = message.get("interactive") or {}
        reply = interactive.get(interactive.get("type") or "") or {}
        if interactive.get("type") in ("button_reply", "list_reply"):
            return str(reply.get("id") or reply.get("title") or "")
        return None
    if kind == "button":  # a template's quick-reply button
        button = message.get("button") or {}
        return str(button.get("payload") or button.get("text") or "")
    return None


class WhatsAppOutput(OptionsOutput, OutputChannel):
    limits = Limits(max_buttons=3, max_button_title=20, max_rows=10, max_row_title=24,
                    max_body=1024)

    @classmethod
    def name(cls) -> Text:
        return CHANNEL

    def __init__(self, access_token: str, phone_number_id: str, api_url: str) -> None:
        self.access_token, self.phone_number_id = access_token, phone_number_id
        self.url = f"{api_url.rstrip('/')}/{phone_number_id}/messages"

    async def _post(self, recipient_id: str, content: Dict[str, Any]) -> None:
        body = {"messaging_product": "whatsapp", "recipient_type": "individual",
                "to": recipient_id, **content}
        try:
            async with httpx.AsyncClient(timeout=15) as client:
                r = await client.post(self.url, json=body,
                                      headers={"Authorization": f"Bearer {self.access_token}"})
            if r.status_code >= 400:
                log.error("WhatsApp API answered %s to a message for %s: %s", r.status_code,
                          mask(recipient_id), r.text[:300])
        except httpx.HTTPError as e:
            log.error("WhatsApp API unreachable for a message to %s: %s", mask(recipient_id), e)

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        for start in range(0, max(len(text), 1), MAX_TEXT):
            await self._post(recipient_id, {"type": "text", "text": {
                "preview_url": False, "body": text[start:start + MAX_TEXT]}})

    async def send_layout(self, recipient_id: str, plan: Layout) -> None:
        if plan.kind == "buttons":
            await self._post(recipient_id, {"type": "interactive", "interactive": {
                "type": "button", "body": {"text": plan.text},
                "action": {"buttons": [{"type": "reply", "reply": {"id": o["payload"][:256],
                                                                   "title": o["title"]}}
                                       for o in plan.options]}}})
        elif plan.kind == "list":
            await self._post(recipient_id, {"type": "interactive", "interactive": {
                "type": "list", "body": {"text": plan.text},
                "action": {"button": LIST_BUTTON, "sections": [{"rows": [
                    {"id": o["payload"][:200], "title": o["title"]} for o in plan.options]}]}}})
        else:
            await self.send_text_message(recipient_id, plan.text)

    async def send_image_url(self, recipient_id: Text, image: Text, **kwargs: Any) -> None:
        await self._post(recipient_id, {"type": "image", "image": {"link": image}})

    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any],
                               **kwargs: Any) -> None:
        """A custom message is a Cloud API message object (`type` and its content)."""
        if isinstance(json_message, dict) and json_message.get("type"):
            await self._post(recipient_id, dict(json_message))


class WhatsAppInput(InputChannel):
    @classmethod
    def name(cls) -> Text:
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        credentials = credentials or {}
        return cls(str(credentials.get("verify_token") or ""),
                   str(credentials.get("app_secret") or ""),
                   str(credentials.get("access_token") or ""),
                   str(credentials.get("phone_number_id") or ""))

    def __init__(self, verify_token: str, app_secret: str, access_token: str,
                 phone_number_id: str) -> None:
        self.verify_token, self.app_secret = verify_token, app_secret
        self.access_token, self.phone_number_id = access_token, phone_number_id
        if not app_secret:
            log.warning("WhatsApp: no app secret configured; every webhook call will get 403")

    def get_output_channel(self) -> OutputChannel:
        return WhatsAppOutput(self.access_token, self.phone_number_id,
                              get_settings().whatsapp_api_url)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint("whatsapp_webhook", __name__)
        limit_size(bp)

        @bp.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @bp.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            args = request.args
            if (args.get("hub.mode") == "subscribe" and self.verify_token
                    and hmac.compare_digest(args.get("hub.verify_token") or "", self.verify_token)):
                return response.text(args.get("hub.challenge") or "")
            return response.text("forbidden", status=403)

        @bp.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not signature_ok(self.app_secret, request.body or b"",
                                request.headers.get("X-Hub-Signature-256")):
                return response.text("invalid signature", status=403)
            try:
                payload = json.loads(request.body)
            except (ValueError, UnicodeDecodeError):
                return response.text("malformed JSON", status=400)
            if not isinstance(payload, dict):
                return response.text("malformed JSON", status=400)
            for message in self._messages(payload):
                try:
                    await self._handle(message, on_new_message)
                except Exception:
                    log.exception("WhatsApp: could not handle a message (type %s)",
                                  message.get("type"))
            return response.text("ok")

        return bp

    @staticmethod
    def _messages(payload: Dict[str, Any]) -> List[Dict[str, Any]]:
        """The messages of a webhook payload (statuses and other fields are left out)."""
        messages = []
        for entry in payload.get("entry") or []:
            for change in (entry or {}).get("changes") or [] if isinstance(entry, dict) else []:
                value = (change or {}).get("value") if isinstance(change, dict) else None
                if isinstance(value, dict):
                    messages += [m for m in value.get("messages") or []
                                 if isinstance(m, dict) and m.get("from") and m.get("id")]
        return messages

    async def _handle(self, message: Dict[str, Any],
                      on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> None:
        sender, kind = str(message["from"]), str(message.get("type") or "unknown")
        if safe_sender(sender) is None:  # never from WhatsApp: a signed but odd payload
            log.warning("WhatsApp: a message from an unsafe sender id ignored")
            return
        if not await run(first_delivery, CHANNEL, str(message["id"])):
            log.info("WhatsApp: duplicate delivery ignored (from %s)", mask(sender))
            return
        if not await allowed(CHANNEL, sender):
            return
        text = message_text(message)
        metadata: Dict[str, Any] = {"whatsapp_message_id": str(message["id"])}
        if text is None:
            text, metadata["unsupported_media"] = "/nlu_fallback", kind
        else:
            text = await choose(CHANNEL, sender, text)
            text, flags = normalise(text)
            metadata.update(flags)
        await on_new_message(UserMessage(text, self.get_output_channel(), sender,
                                         input_channel=CHANNEL, metadata=metadata))
