"""Web widget sessions that only their own browser can use.

Rasa's socket.io channel lets a browser name its session id, joins it to that room and takes
the id as the conversation id: anyone who learns a conversation id (agents see it, it is in
logs) could join it, read the replies and write as the customer. Here the server issues the
session: the browser keeps `<conversation id>.<signature>`, the signature an HMAC of the
conversation id with `SPORTELLO_SECRET_KEY`. The conversation id alone is worth nothing; a
session the server did not sign is replaced by a new one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from bot.settings import get_settings

SEPARATOR = "."
# Conversation ids start with this; "~" is outside the sender ids other channels accept, so no
# REST or messaging sender can name a web widget's conversation.
PREFIX = "web~"


def _signature(conversation_id: str) -> str:
    key = get_settings().secret_key.encode()
    return hmac.new(key, f"web-session:{conversation_id}".encode(), hashlib.sha256).hexdigest()[:32]


def issue() -> str:
    """A new session for a browser: what it must keep and send back."""
    conversation_id = PREFIX + secrets.token_hex(16)
    return f"{conversation_id}{SEPARATOR}{_signature(conversation_id)}"


def conversation_of(session: object) -> str | None:
    """The conversation id of a session this server issued; None for anything else."""
    if not isinstance(session, str) or len(session) > 80:
        return None
    conversation_id, sep, signature = session.partition(SEPARATOR)
    if (not sep or not signature or not conversation_id.startswith(PREFIX)
            or not conversation_id[len(PREFIX):].isalnum()):
        return None
    if hmac.compare_digest(signature.encode(), _signature(conversation_id).encode()):
        return conversation_id
    return None
