"""What every channel does to incoming text before Rasa sees it.

- Text longer than MAX_MESSAGE_CHARS is cut (a huge paste cannot stall the NLU).
- An empty or whitespace-only message becomes the `/nlu_fallback` payload, flagged
  `empty_message` in the metadata, so the fallback action can say the message was empty.
- A `/intent` payload naming an intent the domain does not know becomes `/nlu_fallback`
  (flagged `unknown_payload`) instead of being guessed at by the classifier.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

MAX_MESSAGE_CHARS = 2000
ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = re.compile(r"^/([\w-]+)")


@lru_cache(maxsize=1)
def known_intents() -> frozenset[str]:
    # Not `back` or `session_start`: from a client they would revert events (a lapsed identity
    # with them) or start a session that carries the slots over.
    intents = {"nlu_fallback", "restart", "out_of_scope"}
    for f in (ROOT / "domain").glob("*.yml"):
        intents.update(i if isinstance(i, str) else next(iter(i))
                       for i in (yaml.safe_load(f.read_text()) or {}).get("intents", []) or [])
    return frozenset(intents)


def normalise(message: Any) -> tuple[str, dict]:
    """The text to give Rasa, and metadata flags describing what was changed."""
    text = message if isinstance(message, str) else ""
    if not text.strip():
        return "/nlu_fallback", {"empty_message": True}
    if len(text) > MAX_MESSAGE_CHARS:
        return text[:MAX_MESSAGE_CHARS], {"truncated": True}
    match = PAYLOAD.match(text)
    if match and match.group(1) not in known_intents():
        return "/nlu_fallback", {"unknown_payload": True}
    return text, {}
