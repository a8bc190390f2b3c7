"""The per-sender rate limit, in memory (embedded profile) and in the real Redis (production
profile): a sliding window, so a flood that straddles a clock boundary is still held to the
limit; senders do not share a budget; a broken Redis lets messages through."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis

from bot.ratelimit import MemoryLimiter, RedisLimiter

REDIS_URL = "redis://127.0.0.1:6379/7"


def run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


def limiters():
    return [MemoryLimiter(3, 60), RedisLimiter(REDIS_URL, 3, 60)]


@pytest.fixture(autouse=True)
def clean_redis():
    yield
    r = redis.Redis.from_url(REDIS_URL)
    for key in r.scan_iter("sportello:ratelimit:test-*"):
        r.delete(key)


@pytest.mark.parametrize("limiter", limiters(), ids=["memory", "redis"])
def test_a_flood_across_a_minute_boundary_gets_only_the_limit(limiter):
    key = f"test-{uuid.uuid4().hex}"

    async def flood():
        # three messages just before a whole minute, three just after it: a fixed one-minute
        # window would accept all six
        times = [1_800_000_057.0, 1_800_000_058.0, 1_800_000_059.5,
                 1_800_000_060.5, 1_800_000_061.0, 1_800_000_062.0]
        return [await limiter.allow(key, now=t) for t in times]

    assert run(flood()) == [True, True, True, False, False, False]


@pytest.mark.parametrize("limiter", limiters(), ids=["memory", "redis"])
def test_the_window_slides_and_senders_have_their_own_budget(limiter):
    key, other = f"test-{uuid.uuid4().hex}", f"test-{uuid.uuid4().hex}"

    async def scenario():
        t0 = 1_800_000_000.0
        first = [await limiter.allow(key, now=t0 + i) for i in range(4)]  # 0, 1, 2 ok; 3 no
        others = [await limiter.allow(other, now=t0 + 3)]  # someone else is not held back
        later = [await limiter.allow(key, now=t0 + 60.5),  # the message at t0 left the window
                 await limiter.allow(key, now=t0 + 60.7)]  # the ones at t0+1, t0+2 have not
        return first, others, later

    assert run(scenario()) == ([True, True, True, False], [True], [True, False])


def test_an_unreachable_redis_lets_messages_through():
    broken = RedisLimiter("redis://127.0.0.1:1/0", 1, 60)
    key = f"test-{uuid.uuid4().hex}"

    async def two():
        return [await broken.allow(key), await broken.allow(key)]

    assert run(two()) == [True, True]
