"""WhatsApp (or SMS) through Twilio, `/webhooks/twilio/webhook`: Rasa's `twilio` channel, wrapped;
the webhook is the shared pipeline of the messaging apps (`connectors.pipeline`).

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
from typing import Any, Dict, List, Optional, Text, Union
from urllib.parse import parse_qs

from rasa.core.channels.channel import InputChannel, OutputChannel
from rasa.core.channels.twilio import TwilioInput as RasaTwilioInput
from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse
from twilio.request_validator import RequestValidator

from bot.settings import get_settings
from connectors.guard import mask
from connectors.identity import safe_sender
from connectors.options import TEXT_ONLY
from connectors.pipeline import Inbound, MessagingInput, PlatformOutput

log = logging.getLogger(__name__)

CHANNEL = "twilio"
MAX_BODY = 1600  # Twilio's limit for one message body


class TwilioOutput(PlatformOutput):
    CHANNEL, LABEL, MAX_TEXT = CHANNEL, "Twilio", MAX_BODY
    limits = TEXT_ONLY

    def __init__(self, account_sid: str, auth_token: str, number: str, api_url: str) -> None:
        self.auth, self.number = (account_sid, auth_token), number
        self.url = f"{api_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"

    async def send_part(self, recipient_id: str, text: str) -> None:
        await self.post(self.url, f"a message for {mask(recipient_id)}", auth=self.auth,
                        data={"To": recipient_id, "From": self.number, "Body": text})


class TwilioInput(MessagingInput, RasaTwilioInput):
    CHANNEL, LABEL, BLUEPRINT = CHANNEL, "Twilio", "twilio_webhook"
    ACKNOWLEDGEMENT = ("", 204)
    ERRORS_ACKNOWLEDGED = False  # Twilio keeps its own log of webhook errors

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

    def payload(self, request: Request) -> Union[Dict[str, str], HTTPResponse]:
        form = self.fields(request)
        if form.get("From") and safe_sender(form["From"]) is None:
            return response.text("invalid sender", status=400)
        return form

    async def messages(self, form: Dict[str, str], request: Request) -> List[Inbound]:
        if not form.get("From"):
            return []
        message = Inbound(form["From"], delivery_id=form.get("MessageSid") or form.get("SmsSid")
                          or None)
        text = form.get("Body") or ""
        if form.get("Latitude") and form.get("Longitude") and not text.strip():
            message.media = "location"
        elif int(form.get("NumMedia") or 0) and not text.strip():
            message.media = (form.get("MediaContentType0") or "media").split("/")[0]
        else:
            message.text = text.replace("¡", "@")
        return [message]
