"""Facebook Messenger, `/webhooks/facebook/webhook`: Rasa's `facebook` channel's credentials and
output, with the shared webhook pipeline (`connectors.pipeline`).

Rasa's channel checks `X-Hub-Signature` (HMAC-SHA1 with the app secret) but answers 200 to a
bad one; here a request whose `X-Hub-Signature-256` (or, failing that, `X-Hub-Signature`) is
wrong or missing gets 403 and is not read, and malformed JSON gets 400. Then the pipeline of
every messaging app: a message id (`mid`) is processed once (shared database), the rate limit
per sender applies, text is normalised like on every channel, a typed "2" or option title picks
an option, and attachments (images, audio, video, files, stickers, locations) get the "what I
can handle" reply instead of their URL being read as text. Quick replies and postbacks carry
their payload as it is; the page's own messages (echoes) are ignored. Buttons: a button
template (up to 3, titles up to 20 characters), quick replies (up to 13) or numbered text
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
from typing import Any, Dict, List, Mapping, Text

from fbmessenger import MessengerClient
from fbmessenger.elements import Text as FBText
from rasa.core.channels.channel import OutputChannel
from rasa.core.channels.facebook import FacebookInput, MessengerBot
from sanic.request import Request

from bot.settings import get_settings
from connectors.options import Layout, Limits, OptionsOutput
from connectors.pipeline import Inbound, MessagingInput, chunks, token_ok

CHANNEL = "facebook"
MAX_TEXT = 2000


def client(page_access_token: str) -> MessengerClient:
    c = MessengerClient(page_access_token)
    c.graph_url = get_settings().messenger_api_url.rstrip("/")
    return c


def signature_ok(secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
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


def inbound(event: Dict[str, Any]) -> List[Inbound]:
    """The message of one `messaging` event: a text, a quick reply, an attachment or a
    postback (none for the page's own messages and other events)."""
    sender = str(event["sender"]["id"])
    body = event.get("message")
    if not body:
        postback = event.get("postback")
        if isinstance(postback, dict) and "payload" in postback:
            return [Inbound(sender, text=postback["payload"], chosen=True)]
        return []
    if not isinstance(body, dict) or body.get("is_echo"):
        return []  # the page's own messages
    message = Inbound(sender, delivery_id=str(body["mid"]) if body.get("mid") else None)
    if (body.get("quick_reply") or {}).get("payload"):
        message.text, message.chosen = body["quick_reply"]["payload"], True
    elif "text" in body:
        message.text = body["text"]
    else:
        attachments = body.get("attachments") or [{}]
        message.media = str((attachments[0] or {}).get("type") or "unknown")
    return [message]


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
            for part in chunks(plan.text, MAX_TEXT):
                self.send(recipient_id, FBText(text=part))


class MessengerInput(MessagingInput, FacebookInput):
    CHANNEL, LABEL, BLUEPRINT = CHANNEL, "Messenger", "fb_webhook"
    SUBSCRIPTION = True

    def get_output_channel(self) -> OutputChannel:
        return MessengerOutput(client(self.fb_access_token))

    def subscription_ok(self, args: Any) -> bool:
        return token_ok(args.get("hub.verify_token"), self.fb_verify)

    def signature_ok(self, request: Request) -> bool:
        return signature_ok(self.fb_secret or "", request.body or b"", request.headers)

    async def messages(self, payload: Dict[str, Any], request: Request) -> List[Inbound]:
        found = []
        for entry in payload.get("entry") or []:
            for event in (entry or {}).get("messaging") or [] if isinstance(entry, dict) else []:
                if isinstance(event, dict) and (event.get("sender") or {}).get("id"):
                    found += inbound(event)
        metadata = self.get_metadata(request) or {}
        for message in found:
            message.metadata = dict(metadata)
        return found
