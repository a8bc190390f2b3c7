"""What a channel may believe about who is writing: the sender id's form, and the customer a
token proves. Nothing here trusts a value the client chose.

- A sender id is accepted only from a safe alphabet and length (`SENDER`): it becomes part
  of URLs, file names and log lines, and a `/` or `?` in it once redirected an agent's reply.
- The customer token of the company's site (`metadata.customer_token`) is checked here, where
  the message arrives, and replaced by what it proves (`metadata.customer`: the customer code,
  or `invalid`). The raw token never reaches the tracker store, the event stream or the logs,
  and a client cannot put a `customer` value of its own in the metadata.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Optional

from bot.tokens import customer_from_token

SENDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+@=-]{0,127}")
TOKEN_KEY = "customer_token"
CUSTOMER_KEY = "customer"  # set only by a channel: {"code": "C1234567"} or {"invalid": True}


# Sender ids of the messaging apps (phone numbers, numeric user ids, Twilio's `whatsapp:+…`):
# a REST client may not use them, or it would write in (and read the replies of) that app's
# conversation. The web widget's conversation ids contain "~", outside the safe alphabet.
MESSAGING_SENDER = re.compile(r"\+?\d+|(?:whatsapp|messenger|sms|tel):.*", re.IGNORECASE)


def rest_sender(sender: Any) -> Optional[str]:
    """A sender id a REST client may use: safe, and not another channel's."""
    sender = safe_sender(sender)
    if sender is None or MESSAGING_SENDER.fullmatch(sender):
        return None
    return sender


def safe_sender(sender: Any) -> Optional[str]:
    """The sender id when it is of the safe alphabet and length, else None."""
    if isinstance(sender, int) and not isinstance(sender, bool):
        sender = str(sender)
    if isinstance(sender, str) and SENDER.fullmatch(sender):
        return sender
    return None


def identify(metadata: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The metadata with the token replaced by the customer it proves."""
    metadata = dict(metadata) if isinstance(metadata, dict) else {}
    metadata.pop(CUSTOMER_KEY, None)
    if TOKEN_KEY in metadata:
        code = customer_from_token(metadata.pop(TOKEN_KEY))
        metadata[CUSTOMER_KEY] = {"code": code} if code else {"invalid": True}
    return metadata
