"""WhatsApp Business Cloud API channel (Meta's Graph API), `/webhooks/whatsapp/webhook`: the
wire format, signature and send API of WhatsApp on the shared pipeline (`connectors.pipeline`).

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
import logging
from typing import Any, Dict, List, Optional, Text

from rasa.core.channels.channel import InputChannel, OutputChannel
from sanic.request import Request

from bot.settings import get_settings
from connectors.guard import mask
from connectors.options import Layout, Limits
from connectors.pipeline import Inbound, MessagingInput, PlatformOutput, token_ok

log = logging.getLogger(__name__)

CHANNEL = "whatsapp"
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


def messages(payload: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The messages of a webhook payload (statuses and other fields are left out)."""
    found = []
    for entry in payload.get("entry") or []:
        for change in (entry or {}).get("changes") or [] if isinstance(entry, dict) else []:
            value = (change or {}).get("value") if isinstance(change, dict) else None
            if isinstance(value, dict):
                found += [m for m in value.get("messages") or []
                          if isinstance(m, dict) and m.get("from") and m.get("id")]
    return found


class WhatsAppOutput(PlatformOutput):
    CHANNEL, LABEL, MAX_TEXT = CHANNEL, "WhatsApp API", MAX_TEXT
    limits = Limits(max_buttons=3, max_button_title=20, max_rows=10, max_row_title=24,
                    max_body=1024)

    def __init__(self, access_token: str, phone_number_id: str, api_url: str) -> None:
        self.access_token, self.phone_number_id = access_token, phone_number_id
        self.url = f"{api_url.rstrip('/')}/{phone_number_id}/messages"

    async def _post(self, recipient_id: str, content: Dict[str, Any]) -> None:
        body = {"messaging_product": "whatsapp", "recipient_type": "individual",
                "to": recipient_id, **content}
        await self.post(self.url, f"a message for {mask(recipient_id)}", json=body,
                        headers={"Authorization": f"Bearer {self.access_token}"})

    async def send_part(self, recipient_id: str, text: str) -> None:
        await self._post(recipient_id, {"type": "text", "text": {"preview_url": False,
                                                                 "body": text}})

    async def send_options(self, recipient_id: str, plan: Layout) -> None:
        if plan.kind == "buttons":
            await self._post(recipient_id, {"type": "interactive", "interactive": {
                "type": "button", "body": {"text": plan.text},
                "action": {"buttons": [{"type": "reply", "reply": {"id": o["payload"][:256],
                                                                   "title": o["title"]}}
                                       for o in plan.options]}}})
        else:  # a list
            await self._post(recipient_id, {"type": "interactive", "interactive": {
                "type": "list", "body": {"text": plan.text},
                "action": {"button": LIST_BUTTON, "sections": [{"rows": [
                    {"id": o["payload"][:200], "title": o["title"]} for o in plan.options]}]}}})

    async def send_image_url(self, recipient_id: Text, image: Text, **kwargs: Any) -> None:
        await self._post(recipient_id, {"type": "image", "image": {"link": image}})

    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any],
                               **kwargs: Any) -> None:
        """A custom message is a Cloud API message object (`type` and its content)."""
        if isinstance(json_message, dict) and json_message.get("type"):
            await self._post(recipient_id, dict(json_message))


class WhatsAppInput(MessagingInput):
    CHANNEL, LABEL, BLUEPRINT = CHANNEL, "WhatsApp", "whatsapp_webhook"
    ACKNOWLEDGEMENT = ("ok", 200)
    SUBSCRIPTION = True

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

    def subscription_ok(self, args: Any) -> bool:
        return (args.get("hub.mode") == "subscribe"
                and token_ok(args.get("hub.verify_token"), self.verify_token))

    def signature_ok(self, request: Request) -> bool:
        return signature_ok(self.app_secret, request.body or b"",
                            request.headers.get("X-Hub-Signature-256"))

    async def messages(self, payload: Dict[str, Any], request: Request) -> List[Inbound]:
        found = []
        for message in messages(payload):
            text, message_id = message_text(message), str(message["id"])
            found.append(Inbound(
                str(message["from"]), text=text, delivery_id=message_id,
                media=str(message.get("type") or "unknown") if text is None else None,
                metadata={"whatsapp_message_id": message_id}))
        return found
