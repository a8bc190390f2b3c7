"""The REST channel with message metadata (Rasa's own `rest` channel drops it).

Posts to `/webhooks/rest/webhook` carry `{"sender", "message", "metadata"}`; the metadata
(e.g. `customer_token`) is stored with the user message, where the actions read it.
Incoming text is normalised by `connectors.text.normalise` (size cap, empty messages, payloads
naming unknown intents), the same for every channel. Bodies over MAX_REQUEST_BYTES get 413 and
a sender over the rate limit gets 429 (`connectors.guard`).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, Optional, Text

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint
from sanic.request import Request

from connectors.guard import limit_rate, limit_size
from connectors.text import normalise


def _sender(request: Request) -> Optional[str]:
    body = request.json if isinstance(request.json, dict) else {}
    sender = body.get("sender")
    return str(sender) if sender is not None else None


class MetadataRestInput(RestInput):
    @classmethod
    def name(cls) -> Text:
        return "rest"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[None]]) -> Blueprint:
        bp = super().blueprint(on_new_message)
        limit_size(bp)
        limit_rate(bp, self.name(), _sender)
        return bp

    def get_metadata(self, request: Request) -> Optional[Dict[Text, Any]]:
        body = request.json if isinstance(request.json, dict) else {}
        metadata = body.get("metadata")
        metadata = dict(metadata) if isinstance(metadata, dict) else {}
        _, flags = normalise(body.get("message"))
        metadata.update(flags)
        return metadata or None

    def _extract_message(self, req: Request) -> Optional[Text]:
        body = req.json if isinstance(req.json, dict) else {}
        text, _ = normalise(body.get("message"))
        return text
