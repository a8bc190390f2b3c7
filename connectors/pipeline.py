"""The one pipeline of the messaging apps' webhooks (WhatsApp, Telegram, Messenger, Twilio).

Each connector says only what its platform differs in: how a request is signed
(`signature_ok`), how its body reads (`payload`, `messages`: the platform's wire format turned
into `Inbound` messages), what it answers (`ACKNOWLEDGEMENT`) and how replies are sent (its
`PlatformOutput`). Everything else happens here, the same for every app:

Inbound, `POST /webhooks/<channel>/webhook`:
1. a body over MAX_REQUEST_BYTES gets 413 (`connectors.guard.limit_size`);
2. a bad or missing signature gets 403 and the body is not read;
3. a body that does not parse gets 400 ("malformed JSON");
4. each message: a sender id outside the safe alphabet is ignored (`connectors.identity`); a
   delivery id already seen is ignored (shared database, so after a restart or on another
   process too: `bot.channel_state.first_delivery`); a sender over the rate limit is dropped
   (`connectors.guard.allowed`);
5. a message that is not text (image, audio, location, ...) becomes `/nlu_fallback` flagged
   `unsupported_media`, answered with the "what I can handle" reply; a typed "2" or option
   title picks the option sent before (`connectors.options.choose`); text is normalised
   (`connectors.text.normalise`); a payload the platform's own button carried goes as it is;
6. the `UserMessage` goes to Rasa; an error there is logged, never answered;
7. the call is acknowledged (the platforms redeliver anything else), also when a message was
   dropped or failed.
`GET /webhooks/<channel>/` answers `{"status": "ok"}`; where the platform subscribes with a
verify token (`hub.verify_token`), `GET /webhooks/<channel>/webhook` echoes `hub.challenge` to
the right token and answers 403 otherwise.

Outbound: `PlatformOutput.post` sends one request to the platform's API and logs a refusal or an
unreachable API (a reply that cannot be delivered never fails the turn); long texts go in parts
of the platform's maximum size (`chunks`).
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, ClassVar, Dict, Iterable, List, Optional, Text, Union

import httpx
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channel_state import first_delivery
from bot.persistence.db import run
from connectors.guard import allowed, limit_size, mask
from connectors.identity import safe_sender
from connectors.options import Layout, OptionsOutput, choose
from connectors.outage import guarded
from connectors.text import normalise

log = logging.getLogger(__name__)

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]
TIMEOUT = 15  # seconds, for every call to a platform's API


@dataclass
class Inbound:
    """One message of a webhook call, in the pipeline's terms.

    `media` names what the customer sent when it is not text (then `text` is not read);
    `chosen` marks a payload of the platform's own button or quick reply, given to Rasa as it
    is; `delivery_id` is the platform's id for the message (None: not deduplicated)."""

    sender: str
    text: Any = ""
    media: Optional[str] = None
    chosen: bool = False
    delivery_id: Optional[str] = None
    metadata: Dict[str, Any] = field(default_factory=dict)


def chunks(text: str, size: int) -> List[str]:
    """The text in parts of at most `size` characters (an empty text is one empty part)."""
    return [text[start:start + size] for start in range(0, max(len(text), 1), size)]


def read_json(request: Request) -> Optional[Dict[str, Any]]:
    """The JSON object of the body, or None when the body is not one."""
    try:
        payload = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


class MessagingInput(InputChannel):
    """Base of the messaging apps' input channels (put it before Rasa's channel class)."""

    CHANNEL: ClassVar[str]
    LABEL: ClassVar[str]  # the platform's name in log lines
    BLUEPRINT: ClassVar[str]
    ACKNOWLEDGEMENT: ClassVar[tuple] = ("success", 200)  # body and status of every answer
    REFUSAL: ClassVar[str] = "invalid signature"  # the body of the 403
    # An error before the message reaches Rasa (e.g. the database) is logged and acknowledged;
    # False: it is raised (HTTP 500) instead.
    ERRORS_ACKNOWLEDGED: ClassVar[bool] = True
    SUBSCRIPTION: ClassVar[bool] = False  # whether `GET .../webhook` checks a verify token

    @classmethod
    def name(cls) -> Text:
        return cls.CHANNEL

    # --- what each platform says ---------------------------------------------------------------

    def signature_ok(self, request: Request) -> bool:
        raise NotImplementedError

    def payload(self, request: Request) -> Union[Any, HTTPResponse]:
        """The body as the platform's object, or the answer to a body that does not read."""
        payload = read_json(request)
        if payload is None:
            return response.text("malformed JSON", status=400)
        return payload

    async def messages(self, payload: Any, request: Request) -> Iterable[Inbound]:
        raise NotImplementedError

    def subscription_ok(self, args: Any) -> bool:
        """Whether a `GET .../webhook` subscription check is right (with SUBSCRIPTION)."""
        return False

    # --- the pipeline --------------------------------------------------------------------------

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        bp = Blueprint(self.BLUEPRINT, __name__)
        limit_size(bp)

        @bp.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        if self.SUBSCRIPTION:
            @bp.route("/webhook", methods=["GET"])
            async def verify(request: Request) -> HTTPResponse:
                if self.subscription_ok(request.args):
                    return response.text(request.args.get("hub.challenge") or "")
                return response.text("forbidden", status=403)

        @bp.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            return await self.receive(request, on_new_message)

        return bp

    async def receive(self, request: Request, on_new_message: OnNewMessage) -> HTTPResponse:
        if not self.signature_ok(request):
            return response.text(self.REFUSAL, status=403)
        payload = self.payload(request)
        if isinstance(payload, HTTPResponse):
            return payload
        try:
            for message in await self.messages(payload, request):
                try:
                    await self.handle(message, on_new_message)
                except Exception:
                    if not self.ERRORS_ACKNOWLEDGED:
                        raise
                    log.exception("%s: could not handle a message", self.LABEL)
        except Exception:
            if not self.ERRORS_ACKNOWLEDGED:
                raise
            log.exception("%s: could not read a webhook call", self.LABEL)
        body, status = self.ACKNOWLEDGEMENT
        return response.text(body, status=status)

    async def handle(self, message: Inbound, on_new_message: OnNewMessage) -> None:
        """One message through the checks to Rasa (returns quietly when one drops it)."""
        sender = message.sender
        if safe_sender(sender) is None:  # never from the platform: a signed but odd payload
            log.warning("%s: a message from an unsafe sender id ignored", self.LABEL)
            return
        if message.delivery_id is not None and not await run(first_delivery, self.CHANNEL,
                                                             message.delivery_id):
            log.info("%s: duplicate delivery ignored (from %s)", self.LABEL, mask(sender))
            return
        if not await allowed(self.CHANNEL, sender):
            return
        metadata = dict(message.metadata)
        if message.media is not None:
            text, metadata["unsupported_media"] = "/nlu_fallback", message.media
        elif message.chosen:
            text = message.text
        else:
            text, flags = normalise(await choose(self.CHANNEL, sender, message.text))
            metadata.update(flags)
        try:
            await guarded(on_new_message)(UserMessage(text, self.get_output_channel(), sender,
                                                      input_channel=self.CHANNEL,
                                                      metadata=metadata or None))
        except Exception:
            log.exception("%s: could not handle a message from %s", self.LABEL, mask(sender))


def token_ok(given: Optional[str], expected: Optional[str]) -> bool:
    """Whether a shared secret sent in clear is the configured one (never when none is)."""
    return bool(expected) and hmac.compare_digest(given or "", expected)


class PlatformOutput(OptionsOutput, OutputChannel):
    """Base of the messaging apps' output channels: one post-and-log for every API call, texts
    in parts of `MAX_TEXT`, and the buttons' layout (`connectors.options`)."""

    CHANNEL: ClassVar[str]
    LABEL: ClassVar[str]  # the API's name in log lines
    MAX_TEXT: ClassVar[int]

    @classmethod
    def name(cls) -> Text:
        return cls.CHANNEL

    async def post(self, url: str, about: str, **request: Any) -> None:
        """POST to the platform; a refusal or an unreachable API is logged, never raised.
        `about` says what was sent, for the log."""
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT) as client:
                r = await client.post(url, **request)
            if r.status_code >= 400:
                log.error("%s answered %s to %s: %s", self.LABEL, r.status_code, about,
                          r.text[:300])
        except httpx.HTTPError as e:
            log.error("%s unreachable for %s: %s", self.LABEL, about, e)

    async def send_part(self, recipient_id: str, text: str) -> None:
        """Send one text of at most MAX_TEXT characters."""
        raise NotImplementedError

    async def send_options(self, recipient_id: str, plan: Layout) -> None:
        """Send a text with native buttons or a list (a channel whose `limits` allow them)."""
        raise NotImplementedError

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        for part in chunks(text, self.MAX_TEXT):
            await self.send_part(recipient_id, part)

    async def send_layout(self, recipient_id: str, plan: Layout) -> None:
        if plan.kind == "text":
            await self.send_text_message(recipient_id, plan.text)
        else:
            await self.send_options(recipient_id, plan)
