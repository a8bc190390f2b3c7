"""SMS through Twilio's Messages API (https://www.twilio.com/docs/messaging/api/message-resource).

`POST {TWILIO_API_URL}/2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP Basic auth with
the Account SID and the Auth Token, a form with `To`, `From` (or `MessagingServiceSid`) and
`Body`; Twilio answers 201 with the message resource as JSON, or 4xx/5xx with
`{"code", "message", "more_info", "status"}`.
"""

from __future__ import annotations

import re
from urllib.parse import urlparse

import httpx

from bot.notify.base import DeliveryError, Message, NotConfigured, Sender, scrub
from bot.settings import Settings

PROVIDERS = ("twilio",)
E164 = re.compile(r"\+[1-9]\d{6,14}")
MESSAGING_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
TIMEOUT = 15.0  # seconds, connection and answer


def sms_problems(provider: str, account_sid: str, auth_token: str, sender: str,
                 api_url: str) -> list[str]:
    """What stops these SMS settings from sending codes (empty: nothing)."""
    why = "one-time codes to phone numbers cannot be sent"
    if provider not in PROVIDERS:
        return [f"SMS_PROVIDER={provider!r} is not supported (one of {', '.join(PROVIDERS)}): "
                f"{why}"]
    problems = []
    if not account_sid:
        problems.append(f"SMS_TWILIO_ACCOUNT_SID is not set: {why}")
    if not auth_token:
        problems.append(f"SMS_TWILIO_AUTH_TOKEN is not set: {why}")
    if not sender:
        problems.append(f"SMS_FROM is not set (an E.164 number such as +393331234567, or a "
                        f"Messaging Service SID MG...): {why}")
    elif not (E164.fullmatch(sender) or MESSAGING_SERVICE_SID.fullmatch(sender)):
        problems.append(f"SMS_FROM={sender!r} is neither an E.164 number (+393331234567) nor a "
                        f"Twilio Messaging Service SID (MG...): {why}")
    url = urlparse(api_url or "")
    if url.scheme != "https" and url.hostname not in ("127.0.0.1", "localhost", "::1"):
        problems.append(f"TWILIO_API_URL={api_url!r} is not https: the Auth Token and the codes "
                        f"would cross the network unencrypted")
    return problems


class TwilioSms(Sender):
    """Sends SMS with Twilio's REST API; a message Twilio accepted (201) counts as sent."""

    name = "twilio"

    def __init__(self, api_url: str, account_sid: str, auth_token: str, sender: str, *,
                 timeout: float = TIMEOUT) -> None:
        problems = sms_problems("twilio", account_sid, auth_token, sender, api_url)
        if problems:
            raise NotConfigured(problems)
        self.api_url, self.account_sid = api_url.rstrip("/"), account_sid
        self.auth_token, self.sender, self.timeout = auth_token, sender, timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> "TwilioSms":
        return cls(settings.twilio_api_url, settings.sms_twilio_account_sid,
                   settings.sms_twilio_auth_token, settings.sms_from)

    @property
    def url(self) -> str:
        return f"{self.api_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json"

    def form(self, message: Message) -> dict[str, str]:
        form = {"To": message.destination, "Body": message.body}
        if MESSAGING_SERVICE_SID.fullmatch(self.sender):
            form["MessagingServiceSid"] = self.sender
        else:
            form["From"] = self.sender
        return form

    def send(self, message: Message) -> None:
        if message.medium != "sms":
            raise ValueError(f"{self.name} sends SMS, not {message.medium}")
        if not E164.fullmatch(message.destination or ""):
            raise DeliveryError(f"SMS to {message.masked_destination} not sent: not an E.164 "
                                f"phone number")
        try:
            answer = httpx.post(self.url, data=self.form(message),
                                auth=(self.account_sid, self.auth_token),
                                headers={"Accept": "application/json"}, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise DeliveryError(scrub(f"SMS to {message.masked_destination} not sent: Twilio "
                                      f"unreachable ({type(exc).__name__}: {exc})", message)
                                ) from None
        if answer.is_success:
            return
        try:
            error = answer.json()
        except ValueError:
            error = {}
        if not isinstance(error, dict):
            error = {}
        detail = (f"Twilio error {error.get('code')}: {error.get('message')}"
                  + (f" ({error['more_info']})" if error.get("more_info") else "")
                  if error.get("code") or error.get("message") else answer.text[:200])
        raise DeliveryError(scrub(f"SMS to {message.masked_destination} not sent: HTTP "
                                  f"{answer.status_code} from Twilio, {detail}", message))
