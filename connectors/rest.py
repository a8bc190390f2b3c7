"""The REST channel with message metadata (Rasa's own `rest` channel drops it).

Posts to `/webhooks/rest/webhook` carry `{"sender", "message", "metadata"}`; the metadata
(e.g. `customer_token`) is stored with the user message, where the actions read it.
Messages longer than `MAX_MESSAGE_CHARS` are cut, so a huge paste cannot stall the NLU.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Text

from rasa.core.channels.rest import RestInput
from sanic.request import Request

MAX_MESSAGE_CHARS = 2000


class MetadataRestInput(RestInput):
    @classmethod
    def name(cls) -> Text:
        return "rest"

    def get_metadata(self, request: Request) -> Optional[Dict[Text, Any]]:
        body = request.json if isinstance(request.json, dict) else {}
        metadata = body.get("metadata")
        return metadata if isinstance(metadata, dict) else None

    def _extract_message(self, req: Request) -> Optional[Text]:
        message = super()._extract_message(req)
        if isinstance(message, str) and len(message) > MAX_MESSAGE_CHARS:
            return message[:MAX_MESSAGE_CHARS]
        return message
