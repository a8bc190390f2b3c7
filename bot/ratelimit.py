"""Rate limits per sender, shared by every public endpoint (the channels in connectors/, the
desk's and the demo site's sign-in): at most `RATE_LIMIT_MESSAGES` per key in
`RATE_LIMIT_WINDOW_SECONDS`. The counters live in Redis in the production profile (shared by all
processes) and in process memory in the embedded one. If Redis fails, requests are let through
(and logged): a broken limiter must not silence every customer.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from typing import Dict, Optional, Union

from bot.settings import get_settings

log = logging.getLogger(__name__)


class MemoryLimiter:
    """A sliding window per key, in this process."""

    def __init__(self, limit: int, window: float):
        self.limit, self.window = limit, window
        self.hits: Dict[str, deque] = {}

    async def allow(self, key: str, now: Optional[float] = None) -> bool:
        now = time.monotonic() if now is None else now
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
    """A sliding window per key in Redis, shared by every Rasa process: a sorted set of the
    accepted messages' times, trimmed and checked in one Lua script, so that it is atomic across
    processes and a flood that straddles a clock boundary still gets only `limit` messages in
    any `window` seconds (a fixed window would let up to twice the limit through)."""

    SCRIPT = """
    local key, now, window, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    if redis.call('ZCARD', key) >= limit then return 0 end
    redis.call('ZADD', key, now, ARGV[4])
    redis.call('PEXPIRE', key, math.ceil(window * 1000))
    return 1
    """

    def __init__(self, url: str, limit: int, window: float):
        from redis import asyncio as aioredis

        self.redis = aioredis.from_url(url)
        self.limit, self.window = limit, float(window)
        self.script = self.redis.register_script(self.SCRIPT)

    async def allow(self, key: str, now: Optional[float] = None) -> bool:
        now = time.time() if now is None else now
        name = f"sportello:ratelimit:{key}"
        try:
            ok = await self.script(keys=[name], args=[repr(now), repr(self.window), self.limit,
                                                     uuid.uuid4().hex])
        except Exception:
            log.exception("rate limiter unavailable; letting the message through")
            return True
        return bool(int(ok))


_limiter = None


def limiter() -> Union[MemoryLimiter, RedisLimiter]:
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
