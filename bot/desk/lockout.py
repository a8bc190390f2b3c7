"""Per-account backoff of the desk's sign-in (issue 10, item 12).

The per-address limit (`bot.ratelimit`, key address + username) does not stop a guesser that
spreads over many addresses. Here the attempts are counted per username, whatever the address:
the first `FREE_ATTEMPTS` are free; from the fifth failed one on, the account is locked for
`FIRST_LOCK_SECONDS`, doubling with every further failure up to `MAX_LOCK_SECONDS`; a
successful sign-in resets it, and a quiet account is forgotten after `FORGET_SECONDS`.

An attempt is counted *before* the password is checked, in one atomic step, so that a burst of
parallel guesses cannot slip through while the first ones are being verified; a success then
wipes the count. While locked, nothing is checked and the answer is the same whether the
username exists or not, and whether the password was right or not.

The counters live in Redis in the production profile (shared by every desk process) and in
process memory in the embedded one (a single desk process). If Redis fails, this process's
memory takes over (logged): a broken Redis must not switch the protection off.
"""

from __future__ import annotations

import hashlib
import logging
import time
import unicodedata
from typing import Dict, List, Optional, Union

from bot.settings import get_settings

log = logging.getLogger(__name__)
FREE_ATTEMPTS = 5
FIRST_LOCK_SECONDS = 60
MAX_LOCK_SECONDS = 15 * 60
FORGET_SECONDS = 6 * 3600


def account_key(username: str) -> str:
    """The counter's key: the username as typed, normalised (case, spaces, Unicode forms), and
    hashed, so that no username is stored in Redis."""
    name = unicodedata.normalize("NFKC", str(username or "")).strip().casefold()[:64]
    return hashlib.sha256(name.encode()).hexdigest()


def lock_seconds(attempts: int) -> int:
    """How long the account is locked after `attempts` counted attempts without a success."""
    if attempts < FREE_ATTEMPTS:
        return 0
    return min(MAX_LOCK_SECONDS, FIRST_LOCK_SECONDS * 2 ** min(attempts - FREE_ATTEMPTS, 16))


class MemoryBackoff:
    """The counters in this process: key -> [attempts, locked until, last attempt]."""

    def __init__(self) -> None:
        self.accounts: Dict[str, List[float]] = {}

    async def begin(self, key: str, now: Optional[float] = None) -> float:
        now = time.time() if now is None else now
        if len(self.accounts) > 10000:  # forget quiet accounts
            self.accounts = {k: v for k, v in self.accounts.items()
                             if v[2] > now - FORGET_SECONDS}
        state = self.accounts.get(key)
        if state is not None and state[2] <= now - FORGET_SECONDS:
            state = None
        if state is not None and state[1] > now:
            return state[1] - now
        attempts = (state[0] if state else 0) + 1
        locked = lock_seconds(int(attempts))
        self.accounts[key] = [attempts, now + locked if locked else 0.0, now]
        return 0.0

    async def reset(self, key: str) -> None:
        self.accounts.pop(key, None)


class RedisBackoff:
    """The counters in Redis (a hash per account: attempts, locked until), checked and counted
    in one Lua script, atomic across every desk process."""

    SCRIPT = """
    local key, now = KEYS[1], tonumber(ARGV[1])
    local free, first, cap, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]),
        tonumber(ARGV[5])
    local locked = tonumber(redis.call('HGET', key, 'until') or '0')
    if locked > now then return tostring(locked - now) end
    local n = redis.call('HINCRBY', key, 'attempts', 1)
    if n >= free then
      local lock = math.min(cap, first * 2 ^ math.min(n - free, 16))
      redis.call('HSET', key, 'until', tostring(now + lock))
    end
    redis.call('EXPIRE', key, ttl)
    return '0'
    """

    def __init__(self, url: str) -> None:
        from redis import asyncio as aioredis

        self.redis = aioredis.from_url(url)
        self.script = self.redis.register_script(self.SCRIPT)
        self.fallback = MemoryBackoff()

    @staticmethod
    def _name(key: str) -> str:
        return f"sportello:desk-login-backoff:{key}"

    async def begin(self, key: str, now: Optional[float] = None) -> float:
        now = time.time() if now is None else now
        try:
            wait = await self.script(keys=[self._name(key)],
                                     args=[repr(now), FREE_ATTEMPTS, FIRST_LOCK_SECONDS,
                                           MAX_LOCK_SECONDS, FORGET_SECONDS])
        except Exception:
            log.exception("sign-in backoff: Redis unavailable; counting in this process")
            return await self.fallback.begin(key, now)
        return float(wait.decode() if isinstance(wait, bytes) else wait)

    async def reset(self, key: str) -> None:
        await self.fallback.reset(key)
        try:
            await self.redis.delete(self._name(key))
        except Exception:
            log.exception("sign-in backoff: Redis unavailable; could not reset")


_backoff = None


def backoff() -> Union[MemoryBackoff, RedisBackoff]:
    global _backoff
    if _backoff is None:
        url = get_settings().redis_url
        _backoff = RedisBackoff(url) if url else MemoryBackoff()
    return _backoff


async def attempt(username: str) -> float:
    """Counts one sign-in attempt for `username`: 0 when it may go ahead, else the seconds the
    account stays locked (the attempt is not counted then)."""
    return await backoff().begin(account_key(username))


async def succeeded(username: str) -> None:
    await backoff().reset(account_key(username))
