"""The REST channel with message metadata (Rasa's own `rest` channel drops it).

Posts to `/webhooks/rest/webhook` carry `{"sender", "message", "metadata"}`; the metadata
(e.g. `customer_token`) is stored with the user message, where the actions read it.
Incoming text is normalised by `connectors.text.normalise` (size cap, empty messages, payloads
naming unknown intents), the same for every channel. Bodies over MAX_REQUEST_BYTES get 413 and
a sender over the rate limit gets 429 (`connectors.guard`).

Nothing the client chooses is trusted: the input channel is always `rest` (Rasa's own channel
takes it from the body, which let a client pose as a WhatsApp number), a body without a
`sender` of the safe alphabet gets 400 (it would otherwise share the conversation `default`
and skip the rate limit), as does one that is another channel's (a phone number, a messaging
app's numeric id, `whatsapp:+…`: REST would write in that conversation), and the customer
token is replaced by the customer it proves (`connectors.identity`).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, Optional, Text

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request

from connectors.guard import limit_rate, limit_size
from connectors.identity import identify, rest_sender
from connectors.outage import guarded
from connectors.text import normalise


def _body(request: Request) -> dict:
    try:
        body = request.json
    except Exception:  # Sanic raises on a body that is not JSON
        return {}
    return body if isinstance(body, dict) else {}


def _sender(request: Request) -> Optional[str]:
    return rest_sender(_body(request).get("sender"))


class MetadataRestInput(RestInput):
    @classmethod
    def name(cls) -> Text:
        return "rest"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[None]]) -> Blueprint:
        from bot.logmask import install
        from bot.production import enforce

        install()  # every Rasa process has the REST channel
        enforce("Rasa server")
        bp = super().blueprint(guarded(on_new_message))
        limit_size(bp)

        @bp.middleware("request")
        async def _well_formed(request: Request):
            if request.method != "POST":
                return None
            try:
                body = request.json
            except Exception:
                body = None
            if not isinstance(body, dict):
                return response.json({"error": "the body must be a JSON object with "
                                               "\"sender\" and \"message\""}, status=400)
            if _sender(request) is None:
                return response.json({"error": "\"sender\" is required: 1 to 128 letters, "
                                               "digits or . _ : + @ = -, starting with a letter "
                                               "or digit, and not a phone number or another "
                                               "channel's id"}, status=400)
            return None

        limit_rate(bp, self.name(), _sender)
        return bp

    async def _extract_sender(self, req: Request) -> Optional[Text]:
        return _sender(req)

    def _extract_input_channel(self, req: Request) -> Text:
        return self.name()  # never the body's `input_channel`

    def get_metadata(self, request: Request) -> Optional[Dict[Text, Any]]:
        body = _body(request)
        metadata = identify(body.get("metadata"))
        _, flags = normalise(body.get("message"))
        metadata.update(flags)
        return metadata or None

    def _extract_message(self, req: Request) -> Optional[Text]:
        text, _ = normalise(_body(req).get("message"))
        return text
