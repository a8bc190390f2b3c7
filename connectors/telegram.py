"""Telegram, `/webhooks/telegram/webhook`: Rasa's channel, wrapped.

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

import hmac
import json
import logging
from typing import Any, Awaitable, Callable, Dict, Optional, Text

import httpx
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.core.channels.telegram import TelegramInput as RasaTelegramInput
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

CHANNEL = "telegram"
MAX_TEXT = 4096
MAX_CALLBACK_DATA = 64  # bytes
MEDIA = ("photo", "voice", "audio", "video", "video_note", "animation", "document", "sticker",
         "location", "venue", "contact", "poll", "dice")


class TelegramOutput(OptionsOutput, OutputChannel):
    limits = Limits(max_buttons=100, max_button_title=64, max_body=MAX_TEXT)

    @classmethod
    def name(cls) -> Text:
        return CHANNEL

    def __init__(self, access_token: str, api_url: str) -> None:
        self.base = f"{api_url.rstrip('/')}/bot{access_token}"

    async def call(self, method: str, body: Dict[str, Any]) -> None:
        try:
            async with httpx.AsyncClient(timeout=15) as client:
                r = await client.post(f"{self.base}/{method}", json=body)
            if r.status_code >= 400:
                log.error("Telegram API answered %s to %s: %s", r.status_code, method,
                          r.text[:300])
        except httpx.HTTPError as e:
            log.error("Telegram API unreachable (%s): %s", method, e)

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        for start in range(0, max(len(text), 1), MAX_TEXT):
            await self.call("sendMessage", {"chat_id": recipient_id,
                                            "text": text[start:start + MAX_TEXT]})

    async def send_layout(self, recipient_id: str, plan: Layout) -> None:
        if plan.kind == "text":
            await self.send_text_message(recipient_id, plan.text)
            return
        keyboard = [[{"text": o["title"],
                      "callback_data": o["payload"] if len(o["payload"].encode())
                      <= MAX_CALLBACK_DATA else str(i)}]
                    for i, o in enumerate(plan.options, 1)]
        await self.call("sendMessage", {"chat_id": recipient_id, "text": plan.text,
                                        "reply_markup": {"inline_keyboard": keyboard}})

    async def send_image_url(self, recipient_id: Text, image: Text, **kwargs: Any) -> None:
        await self.call("sendPhoto", {"chat_id": recipient_id, "photo": image})


class TelegramInput(RasaTelegramInput):
    @classmethod
    def name(cls) -> Text:
        return CHANNEL

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

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint("telegram_webhook", __name__)
        limit_size(bp)

        @bp.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @bp.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            given = request.headers.get("X-Telegram-Bot-Api-Secret-Token") or ""
            if not self.secret_token or not hmac.compare_digest(given, self.secret_token):
                return response.text("forbidden", status=403)
            try:
                update = json.loads(request.body)
            except (ValueError, UnicodeDecodeError):
                return response.text("malformed JSON", status=400)
            if not isinstance(update, dict):
                return response.text("malformed JSON", status=400)
            try:
                await self._handle(update, on_new_message)
            except Exception:
                log.exception("Telegram: could not handle an update")
            return response.text("success")

        return bp

    async def _handle(self, update: Dict[str, Any],
                      on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> None:
        out = self.get_output_channel()
        callback = update.get("callback_query")
        if isinstance(callback, dict):
            message, text = callback.get("message") or {}, str(callback.get("data") or "")
            await out.call("answerCallbackQuery", {"callback_query_id": callback.get("id")})
        else:
            message = update.get("message") or update.get("edited_message")
            if not isinstance(message, dict):
                return  # channel posts, membership changes, polls...: nothing to answer
            text = message.get("text") if isinstance(message.get("text"), str) else None
        chat = (message or {}).get("chat") or {}
        if chat.get("id") is None:
            return
        sender = str(chat["id"])
        if safe_sender(sender) is None:
            log.warning("Telegram: an update from an unsafe chat id ignored")
            return
        if "update_id" in update and not await run(first_delivery, CHANNEL,
                                                   str(update["update_id"])):
            log.info("Telegram: duplicate update ignored (chat %s)", mask(sender))
            return
        if not await allowed(CHANNEL, sender):
            return
        metadata: Dict[str, Any] = {}
        if text is None:
            kind = next((k for k in MEDIA if k in message), "unknown")
            text, metadata["unsupported_media"] = "/nlu_fallback", kind
        else:
            if text.startswith("/start"):
                text = "/greet"
            text, flags = normalise(await choose(CHANNEL, sender, text))
            metadata.update(flags)
        await on_new_message(UserMessage(text, out, sender, input_channel=CHANNEL,
                                         metadata=metadata or None))
