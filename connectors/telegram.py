"""Telegram, `/webhooks/telegram/webhook`: Rasa's channel, wrapped; the webhook is the shared
pipeline of the messaging apps (`connectors.pipeline`), with what Telegram differs in.

- Every update must carry `X-Telegram-Bot-Api-Secret-Token` equal to the `secret_token` given
  to Telegram's `setWebhook`, or it gets 403 and is not read; malformed JSON gets 400.
- Nothing is called at startup (Rasa's channel sets the webhook through aiogram when it starts,
  and checks the bot's name with `getMe` on every update); the webhook is registered once with
  `setWebhook` (README).
- Updates are processed once (update ids in the shared database); text, edited text and inline
  keyboard presses (`callback_query`, answered with `answerCallbackQuery`) go to Rasa; photos,
  voice, audio, locations, stickers, documents and the like get the "what I can handle" reply.
- Outbound: the Bot API's `sendMessage` (JSON) at `TELEGRAM_API_URL`; buttons become an inline
  keyboard, one button per row (`connectors.options`).

credentials.yml:

    connectors.telegram.TelegramInput:
      access_token: ${TELEGRAM_TOKEN}
      verify: ${TELEGRAM_BOT_NAME}
      webhook_url: ${TELEGRAM_WEBHOOK_URL}
      secret_token: ${TELEGRAM_SECRET_TOKEN}
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text

from rasa.core.channels.channel import InputChannel
from rasa.core.channels.telegram import TelegramInput as RasaTelegramInput
from sanic.request import Request

from bot.settings import get_settings
from connectors.options import Layout, Limits
from connectors.pipeline import Inbound, MessagingInput, PlatformOutput, token_ok

log = logging.getLogger(__name__)

CHANNEL = "telegram"
MAX_TEXT = 4096
MAX_CALLBACK_DATA = 64  # bytes
MEDIA = ("photo", "voice", "audio", "video", "video_note", "animation", "document", "sticker",
         "location", "venue", "contact", "poll", "dice")


class TelegramOutput(PlatformOutput):
    CHANNEL, LABEL, MAX_TEXT = CHANNEL, "Telegram API", MAX_TEXT
    limits = Limits(max_buttons=100, max_button_title=64, max_body=MAX_TEXT)

    def __init__(self, access_token: str, api_url: str) -> None:
        self.base = f"{api_url.rstrip('/')}/bot{access_token}"

    async def call(self, method: str, body: Dict[str, Any]) -> None:
        await self.post(f"{self.base}/{method}", method, json=body)

    async def send_part(self, recipient_id: str, text: str) -> None:
        await self.call("sendMessage", {"chat_id": recipient_id, "text": text})

    async def send_options(self, recipient_id: str, plan: Layout) -> None:
        keyboard = [[{"text": o["title"],
                      "callback_data": o["payload"] if len(o["payload"].encode())
                      <= MAX_CALLBACK_DATA else str(i)}]
                    for i, o in enumerate(plan.options, 1)]
        await self.call("sendMessage", {"chat_id": recipient_id, "text": plan.text,
                                        "reply_markup": {"inline_keyboard": keyboard}})

    async def send_image_url(self, recipient_id: Text, image: Text, **kwargs: Any) -> None:
        await self.call("sendPhoto", {"chat_id": recipient_id, "photo": image})


class TelegramInput(MessagingInput, RasaTelegramInput):
    CHANNEL, LABEL, BLUEPRINT = CHANNEL, "Telegram", "telegram_webhook"
    REFUSAL = "forbidden"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        credentials = credentials or {}
        return cls(str(credentials.get("access_token") or ""), credentials.get("verify"),
                   credentials.get("webhook_url"), str(credentials.get("secret_token") or ""))

    def __init__(self, access_token: str, verify: Optional[str], webhook_url: Optional[str],
                 secret_token: str = "", debug_mode: bool = False) -> None:
        super().__init__(access_token, verify, webhook_url, debug_mode)
        self.secret_token = secret_token
        if not secret_token:
            log.warning("Telegram: no secret token configured; every update will get 403")

    def get_output_channel(self) -> TelegramOutput:
        """The Bot API client, without Rasa's set_webhook call at startup."""
        return TelegramOutput(self.access_token, get_settings().telegram_api_url)

    def signature_ok(self, request: Request) -> bool:
        return token_ok(request.headers.get("X-Telegram-Bot-Api-Secret-Token"), self.secret_token)

    async def messages(self, update: Dict[str, Any], request: Request) -> List[Inbound]:
        callback = update.get("callback_query")
        if isinstance(callback, dict):
            message, text = callback.get("message") or {}, str(callback.get("data") or "")
            await self.get_output_channel().call("answerCallbackQuery",
                                                 {"callback_query_id": callback.get("id")})
        else:
            message = update.get("message") or update.get("edited_message")
            if not isinstance(message, dict):
                return []  # channel posts, membership changes, polls...: nothing to answer
            text = message.get("text") if isinstance(message.get("text"), str) else None
        chat = (message.get("chat") if isinstance(message, dict) else None) or {}
        if not isinstance(chat, dict) or chat.get("id") is None:
            return []
        inbound = Inbound(str(chat["id"]), text=text)
        if "update_id" in update:
            inbound.delivery_id = str(update["update_id"])
        if text is None:
            inbound.media = next((k for k in MEDIA if k in message), "unknown")
        elif text.startswith("/start"):
            inbound.text = "/greet"
        return [inbound]
