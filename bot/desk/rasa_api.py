"""The desk's side of Rasa's HTTP API: agent messages into the customer's own channel, handing a
conversation back to the bot, and reading a conversation's events."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx

from bot.settings import get_settings


class RasaError(RuntimeError):
    pass


def segment(value: str) -> str:
    """One path segment of a Rasa URL, escaped: a conversation id holding `/`, `?`, `#` or `..`
    must never reach another conversation or another endpoint (issue 10, item 6)."""
    value = str(value or "")
    if not value:
        raise RasaError("empty conversation id")
    # Sanic matches Rasa's routes on the raw path, so the characters of the sender-id alphabet
    # stay as they are (`whatsapp:+39…` must reach its own tracker); anything else is escaped.
    escaped = quote(value, safe=":+@=~")
    if escaped in (".", ".."):  # a dot segment would be removed by URL normalisation
        escaped = escaped.replace(".", "%2E")
    return escaped


def conversation_path(conversation_id: str, *rest: str) -> str:
    """`/conversations/<id>/<rest…>`, every segment escaped."""
    return "/".join(["", "conversations", segment(conversation_id),
                     *(segment(part) for part in rest)])


class RasaAPI:
    def __init__(self, base_url: str | None = None, token: str | None = None) -> None:
        s = get_settings()
        self.base_url = (base_url or s.rasa_url).rstrip("/")
        self.token = token or s.rasa_token
        self.client = httpx.AsyncClient(timeout=30)

    async def close(self) -> None:
        await self.client.aclose()

    async def _post(self, path: str, body: Any, **params: str) -> dict:
        try:
            r = await self.client.post(f"{self.base_url}{path}", json=body,
                                       params={"token": self.token, **params})
        except httpx.HTTPError as exc:
            raise RasaError(f"the Rasa server does not answer: {exc}") from exc
        if r.status_code >= 400:
            raise RasaError(f"Rasa refused {path}: {r.status_code} {r.text[:300]}")
        return r.json()

    async def tracker(self, conversation_id: str) -> dict:
        try:
            path = conversation_path(conversation_id, "tracker")
            r = await self.client.get(f"{self.base_url}{path}",
                                      params={"token": self.token, "include_events": "ALL"})
        except httpx.HTTPError as exc:
            raise RasaError(f"the Rasa server does not answer: {exc}") from exc
        if r.status_code >= 400:
            raise RasaError(f"Rasa refused the tracker: {r.status_code}")
        return r.json()

    async def send_agent_message(self, conversation_id: str, text: str, agent_name: str,
                                 agent_username: str) -> None:
        """A bot utterance with the agent in its metadata: delivered to the customer's latest
        channel and kept in the transcript."""
        event = {"event": "bot", "text": text, "timestamp": time.time(),
                 "metadata": {"agent": agent_name, "agent_username": agent_username}}
        await self._post(conversation_path(conversation_id, "tracker", "events"), event,
                         output_channel="latest", execute_side_effects="true",
                         include_events="NONE")

    async def resume_with(self, conversation_id: str, action: str) -> None:
        """Give the conversation back to the bot and let `action` speak first."""
        await self._post(conversation_path(conversation_id, "tracker", "events"),
                         {"event": "resume", "timestamp": time.time()}, include_events="NONE")
        await self._post(conversation_path(conversation_id, "execute"), {"name": action},
                         output_channel="latest", include_events="NONE")
        # The bot listens again, so the customer's next message is handled as usual.
        await self._post(conversation_path(conversation_id, "tracker", "events"),
                         {"event": "action", "name": "action_listen", "timestamp": time.time()},
                         include_events="NONE")
