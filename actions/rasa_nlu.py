"""The Rasa server's own NLU, asked from the action server through its authenticated HTTP API
(`POST /model/parse`): for a part of a message that the classifier saw only as a whole ("no
wait, cancel that. how much is my bill?" is `cancel`; its second sentence is `check_bill`)."""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

import httpx

from bot.settings import get_settings

log = logging.getLogger(__name__)
PARSE_TIMEOUT_SECONDS = 5.0


async def parse(text: str) -> Optional[Dict[str, Any]]:
    """Rasa's parse of `text` (intent, ranking, entities), or None when the server cannot say:
    the caller then goes on as if the text held no request."""
    settings = get_settings()
    try:
        async with httpx.AsyncClient(timeout=PARSE_TIMEOUT_SECONDS) as client:
            response = await client.post(f"{settings.rasa_url}/model/parse",
                                         params={"token": settings.rasa_token},
                                         json={"text": text})
            response.raise_for_status()
            return response.json()
    except (httpx.HTTPError, ValueError):
        log.warning("could not parse a part of a message with the Rasa server", exc_info=True)
        return None
