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
import time
from collections import deque
from typing import Callable, Dict, Optional

from sanic import Blueprint, response
from sanic.request import Request

from bot.settings import get_settings

log = logging.getLogger(__name__)


class MemoryLimiter:
    """A sliding window per key, in this process."""

    def __init__(self, limit: int, window: float):
        self.limit, self.window = limit, window
        self.hits: Dict[str, deque] = {}

    async def allow(self, key: str) -> bool:
        now = time.monotonic()
        if len(self.hits) > 10000:  # forget idle senders
            self.hits = {k: v for k, v in self.hits.items() if v and v[-1] > now - self.window}
        hits = self.hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        return True


class RedisLimiter:
    """A fixed window per key in Redis, shared by every Rasa process."""

    def __init__(self, url: str, limit: int, window: int):
        from redis import asyncio as aioredis

        self.redis = aioredis.from_url(url)
        self.limit, self.window = limit, max(1, int(window))

    async def allow(self, key: str) -> bool:
        slot = int(time.time() // self.window)
        name = f"sportello:ratelimit:{key}:{slot}"
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                count, _ = await pipe.incr(name).expire(name, self.window * 2).execute()
        except Exception:
            log.exception("rate limiter unavailable; letting the message through")
            return True
        return int(count) <= self.limit


_limiter = None


def limiter():
    global _limiter
    if _limiter is None:
        s = get_settings()
        if s.redis_url:
            _limiter = RedisLimiter(s.redis_url, s.rate_limit_messages, s.rate_limit_window_seconds)
        else:
            _limiter = MemoryLimiter(s.rate_limit_messages, s.rate_limit_window_seconds)
    return _limiter


async def allowed(channel: str, sender: Optional[str]) -> bool:
    """Whether one more message from `sender` on `channel` is within the rate limit."""
    if not sender:
        return True
    ok = await limiter().allow(f"{channel}:{sender}")
    if not ok:
        log.warning("rate limit: dropping a message on %s from %s", channel, mask(str(sender)))
    return ok


def mask(sender: str) -> str:
    """A sender id (often a phone number) for the logs: its last 3 characters only."""
    return "***" + sender[-3:] if len(sender) > 3 else "***"


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
            return response.json({"error": "too many messages, slow down"}, status=429,
                                 headers={"Retry-After": str(get_settings().rate_limit_window_seconds)})
        return None
