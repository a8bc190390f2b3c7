"""A clear answer when a message cannot be handled because an engine is away.

While Redis (Rasa's lock store) or PostgreSQL (the tracker store) is down, Rasa raises before
the turn runs and its channels answer nothing at all (REST returns an empty list, socket.io and
the messaging apps stay silent). Every channel hands its messages to Rasa through `guarded`: the
customer then gets the domain's `utter_technical_problem` ("a technical problem right now:
please try again shortly"), in the language of their message, and the message is not stored (the
customer sends it again). Rasa's own processes recover by themselves when the engine is back.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any, Awaitable, Callable

import yaml
from rasa.core.channels.channel import UserMessage

from bot.settings import ROOT

log = logging.getLogger(__name__)
RESPONSE = "utter_technical_problem"

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


@lru_cache(maxsize=1)
def texts() -> dict[str, str]:
    """The response's text per language, as written in domain/core.yml."""
    variations = yaml.safe_load((ROOT / "domain" / "core.yml").read_text())["responses"][RESPONSE]
    out = {}
    for v in variations:
        language = next((c["value"] for c in v.get("condition") or []
                         if c.get("name") == "language"), "it")
        out.setdefault(language, v["text"])
    return out


def text_for(message: str | None) -> str:
    from bot.language import detect

    try:
        language = detect(message) or "it"
    except Exception:  # the detector is no reason for a second failure
        language = "it"
    return texts().get(language, texts()["it"])


def guarded(on_new_message: OnNewMessage) -> OnNewMessage:
    """`on_new_message`, answering the technical-problem reply when it raises."""

    async def handle(message: UserMessage) -> Any:
        try:
            return await on_new_message(message)
        except Exception:
            log.exception("a message could not be handled (is a store or the broker away?)")
            await message.output_channel.send_text_message(message.sender_id,
                                                           text_for(message.text))
            return None

    return handle
