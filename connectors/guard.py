"""Protection of every public webhook: a rate limit per sender and a maximum request size.

- Size: a request body over `MAX_REQUEST_BYTES` gets 413 and is not processed; message texts
  are cut at 2000 characters by `connectors.text.normalise`.
- Rate: at most `RATE_LIMIT_MESSAGES` messages per sender (per channel) in
  `RATE_LIMIT_WINDOW_SECONDS`. The REST channel answers 429 beyond that; platform webhooks
  (WhatsApp, Telegram, Twilio, Messenger) drop the message and still acknowledge it, because
  the platforms redeliver anything that is not acknowledged. Other senders are unaffected.
  The counters live in Redis in the production profile (shared by all Rasa processes) and in
  process memory in the embedded one. If Redis fails, messages are let through (and logged):
  a broken limiter must not silence every customer.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

from sanic import Blueprint, response
from sanic.request import Request

from bot.ratelimit import allowed, mask  # noqa: F401  (used by the channels)
from bot.settings import get_settings

log = logging.getLogger(__name__)


def limit_size(bp: Blueprint) -> None:
    """413 for POST bodies larger than MAX_REQUEST_BYTES on this blueprint's routes."""

    @bp.middleware("request")
    async def _size(request: Request):
        if request.method == "POST" and len(request.body or b"") > get_settings().max_request_bytes:
            return response.json({"error": "request too large",
                                  "max_bytes": get_settings().max_request_bytes}, status=413)
        return None


def limit_rate(bp: Blueprint, channel: str, sender_of: Callable[[Request], Optional[str]]) -> None:
    """429 for POSTs whose sender is over the rate limit on this blueprint's routes."""

    @bp.middleware("request")
    async def _rate(request: Request):
        if request.method != "POST":
            return None
        try:
            sender = sender_of(request)
        except Exception:
            sender = None
        if not await allowed(channel, sender):
            window = get_settings().rate_limit_window_seconds
            return response.json({"error": "too many messages, slow down"}, status=429,
                                 headers={"Retry-After": str(window)})
        return None
