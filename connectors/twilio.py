"""WhatsApp (or SMS) through Twilio, `/webhooks/twilio/webhook`: Rasa's `twilio` channel, wrapped.

Rasa 3.6's channel does not check who is calling; this one validates `X-Twilio-Signature`
with twilio's `RequestValidator` (HMAC-SHA1 of the webhook URL plus the sorted form fields,
keyed with the auth token) and answers 403 otherwise. The URL is the one configured on
Twilio's side (`TWILIO_WEBHOOK_URL`), since behind a proxy the request's own URL differs.
Messages are processed once (`MessageSid` in the shared database). Media messages and
locations get the "what I can handle" reply. Twilio shows text only: buttons become numbered
options (`connectors.options`), answered with "2" or the option's title.
Outbound: Twilio's Messages API (`TWILIO_API_URL`/2010-04-01/Accounts/{sid}/Messages.json,
form-encoded, HTTP basic auth with the account SID and auth token).

credentials.yml:

    connectors.twilio.TwilioInput:
      account_sid: ${TWILIO_ACCOUNT_SID}
      auth_token: ${TWILIO_AUTH_TOKEN}
      twilio_number: ${TWILIO_NUMBER}
      webhook_url: ${TWILIO_WEBHOOK_URL}
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Dict, Optional, Text
from urllib.parse import parse_qs

import httpx
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.core.channels.twilio import TwilioInput as RasaTwilioInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from twilio.request_validator import RequestValidator

from bot.channel_state import first_delivery
from bot.crm.service import run
from bot.settings import get_settings
from connectors.guard import allowed, limit_size, mask
from connectors.identity import safe_sender
from connectors.options import TEXT_ONLY, Layout, OptionsOutput, choose
from connectors.text import normalise

log = logging.getLogger(__name__)

CHANNEL = "twilio"
MAX_BODY = 1600  # Twilio's limit for one message body


class TwilioOutput(OptionsOutput, OutputChannel):
    limits = TEXT_ONLY

    @classmethod
    def name(cls) -> Text:
        return CHANNEL

    def __init__(self, account_sid: str, auth_token: str, number: str, api_url: str) -> None:
        self.auth, self.number = (account_sid, auth_token), number
        self.url = f"{api_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        for start in range(0, max(len(text), 1), MAX_BODY):
            try:
                async with httpx.AsyncClient(timeout=15, auth=self.auth) as client:
                    r = await client.post(self.url, data={"To": recipient_id, "From": self.number,
                                                          "Body": text[start:start + MAX_BODY]})
                if r.status_code >= 400:
                    log.error("Twilio answered %s to a message for %s: %s", r.status_code,
                              mask(recipient_id), r.text[:300])
            except httpx.HTTPError as e:
                log.error("Twilio unreachable for a message to %s: %s", mask(recipient_id), e)

    async def send_layout(self, recipient_id: str, plan: Layout) -> None:
        await self.send_text_message(recipient_id, plan.text)


class TwilioInput(RasaTwilioInput):
    @classmethod
    def name(cls) -> Text:
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        credentials = credentials or {}
        return cls(str(credentials.get("account_sid") or ""),
                   str(credentials.get("auth_token") or ""),
                   str(credentials.get("twilio_number") or ""),
                   webhook_url=str(credentials.get("webhook_url") or ""))

    def __init__(self, account_sid: str, auth_token: str, twilio_number: str,
                 debug_mode: bool = False, webhook_url: str = "") -> None:
        super().__init__(account_sid, auth_token, twilio_number, debug_mode)
        self.webhook_url = webhook_url
        if not auth_token:
            log.warning("Twilio: no auth token configured; every webhook call will get 403")

    def get_output_channel(self) -> OutputChannel:
        return TwilioOutput(self.account_sid, self.auth_token, self.twilio_number,
                            get_settings().twilio_api_url)

    @staticmethod
    def fields(request: Request) -> Dict[str, str]:
        """The form fields, blank ones included (they are signed too; Sanic's form drops them)."""
        try:
            return {k: v[0] for k, v in parse_qs((request.body or b"").decode(),
                                                   keep_blank_values=True).items()}
        except UnicodeDecodeError:
            return {}

    def signature_ok(self, request: Request) -> bool:
        signature = request.headers.get("X-Twilio-Signature")
        if not self.auth_token or not signature:
            return False
        params = self.fields(request)
        return RequestValidator(self.auth_token).validate(self.webhook_url or request.url,
                                                          params, signature)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint("twilio_webhook", __name__)
        limit_size(bp)

        @bp.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @bp.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not self.signature_ok(request):
                return response.text("invalid signature", status=403)
            form = self.fields(request)
            sender, sid = form.get("From"), form.get("MessageSid") or form.get("SmsSid")
            if not sender:
                return response.text("", status=204)
            if safe_sender(sender) is None:
                return response.text("invalid sender", status=400)
            if sid and not await run(first_delivery, CHANNEL, sid):
                log.info("Twilio: duplicate delivery ignored (from %s)", mask(sender))
                return response.text("", status=204)
            if not await allowed(CHANNEL, sender):
                return response.text("", status=204)
            metadata: Dict[str, Any] = {}
            text = form.get("Body") or ""
            media = int(form.get("NumMedia") or 0)
            if form.get("Latitude") and form.get("Longitude") and not text.strip():
                text, metadata["unsupported_media"] = "/nlu_fallback", "location"
            elif media and not text.strip():
                kind = (form.get("MediaContentType0") or "media").split("/")[0]
                text, metadata["unsupported_media"] = "/nlu_fallback", kind
            else:
                text, flags = normalise(await choose(CHANNEL, sender, text.replace("¡", "@")))
                metadata.update(flags)
            try:
                await on_new_message(UserMessage(text, self.get_output_channel(), sender,
                                                 input_channel=CHANNEL,
                                                 metadata=metadata or None))
            except Exception:
                log.exception("Twilio: could not handle a message from %s", mask(sender))
            return response.text("", status=204)

        return bp
