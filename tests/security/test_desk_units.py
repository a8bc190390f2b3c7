"""Issue 10 (desk side), the pieces without a stack: Rasa paths built from hostile conversation
ids, the CSV formula guard on every piece a spreadsheet could split off, and the per-account
sign-in backoff in memory and in the real Redis."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid

import pytest
import redis

from bot.analytics.queries import export
from bot.desk import lockout
from bot.desk.rasa_api import RasaError, conversation_path, segment

REDIS_URL = "redis://127.0.0.1:6379/7"


def run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


# ---- item 6: one conversation id is one path segment ----------------------------------------

HOSTILE_IDS = ["victim/tracker/events?x=", "victim/tracker/events#", "x/../victim", "..", ".",
               "a b%2F?c=d&e#f", "victim\\..\\x", "ü/ß"]


@pytest.mark.parametrize("conversation_id", HOSTILE_IDS)
def test_a_conversation_id_is_one_escaped_path_segment(conversation_id):
    import httpx

    path = conversation_path(conversation_id, "tracker", "events")
    parts = path.split("/")
    assert parts[:2] == ["", "conversations"] and parts[3:] == ["tracker", "events"]
    assert not set("/?#") & set(parts[2]) and parts[2] not in (".", "..")
    # what httpx really sends: the same path, nothing moved to the query or the fragment
    url = httpx.URL("http://rasa:5005" + path)
    assert url.raw_path.decode() == path and not url.query and not url.fragment
    assert segment(conversation_id) == parts[2]


def test_an_empty_conversation_id_is_refused():
    with pytest.raises(RasaError):
        segment("")


# ---- item 11: no piece of a cell runs as a formula --------------------------------------------

SEPARATORS = (";", ",", "\t", "|", "\n", "\r")
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
HOSTILE_CELLS = [
    "=1+1", "x;=1+1;y", "x,=1+1,y", "x\t=1+1", "x|=1+1", "x\n=1+1", "x\r\n=1+1",
    "x; =1+1", "x;   +cmd|' /C calc'!A0", "ok;@SUM(A1:A2)", "ok,-2+3+cmd|' /C calc'!A0",
    "x;-3,cmd|' /C calc'!A0", "\t=1", " =HYPERLINK(\"http://evil\")", "a;;=1", "a; ; =1",
    "=HYPERLINK(\"http://x\");=1", "+", "-", "@", "a,-", "\r=1",
]


def pieces(cell: str):
    """Every piece a spreadsheet splitting on one of SEPARATORS (or all of them) would make."""
    yield cell
    for sep in SEPARATORS:
        yield from cell.split(sep)
    yield from re.split(r"[;,\t|\n\r]", cell)


@pytest.mark.parametrize("cell", HOSTILE_CELLS)
def test_no_piece_of_a_hostile_cell_starts_a_formula(cell):
    guarded = export._cell(cell)
    for piece in pieces(guarded):
        stripped = piece.lstrip(" ")
        assert not stripped.startswith(TRIGGERS) or stripped in ("\t", "\r"), (cell, guarded,
                                                                               piece)
    # nothing is lost: only quotes are added
    assert guarded.replace("'", "") == cell.replace("'", "")


@pytest.mark.parametrize("cell,expected", [
    ("-3", "-3"), ("+39", "+39"), (" -3.5 ", " -3.5 "), ("x;-3;y", "x;-3;y"),
    ("a, +1", "a, +1"), ("ciao; come va", "ciao; come va"),
    ("2026-01-01T10:00:00+00:00", "2026-01-01T10:00:00+00:00"),
    ("x;=1+1;y", "x;'=1+1;y"), ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    (["a", "=b"], "a; '=b"), (None, ""), (True, "yes"), (-3, -3), (0.81, 0.81),
])
def test_plain_values_and_numbers_stay_sensible(cell, expected):
    assert export._cell(cell) == expected


def test_a_whole_export_row_is_guarded():
    text = export._csv(("a", "b"), [{"a": "x;=1+1;y", "b": ["t", "@x"]}])
    row = list(csv.reader(io.StringIO(text)))[1]
    assert row == ["x;'=1+1;y", "t; '@x"]


# ---- item 12: the per-account backoff of the desk's sign-in ---------------------------------


@pytest.fixture(autouse=True)
def clean_redis():
    yield
    r = redis.Redis.from_url(REDIS_URL)
    for key in r.scan_iter("sportello:desk-login-backoff:test-*"):
        r.delete(key)


def backoffs():
    return [lockout.MemoryBackoff(), lockout.RedisBackoff(REDIS_URL)]


def test_the_lock_grows_and_is_capped():
    assert [lockout.lock_seconds(n) for n in range(1, 5)] == [0, 0, 0, 0]
    assert [lockout.lock_seconds(n) for n in range(5, 10)] == [60, 120, 240, 480, 900]
    assert lockout.lock_seconds(10_000) == lockout.MAX_LOCK_SECONDS


def test_the_key_is_the_account_whatever_its_spelling():
    assert lockout.account_key("Giulia ") == lockout.account_key("giulia")
    assert lockout.account_key("giulia") != lockout.account_key("marco")
    assert "giulia" not in lockout.account_key("giulia")


@pytest.mark.parametrize("backoff", backoffs(), ids=["memory", "redis"])
def test_five_attempts_then_a_doubling_lock(backoff):
    key = f"test-{uuid.uuid4().hex}"

    async def scenario():
        t = 1_000_000.0
        waits = [await backoff.begin(key, t + i) for i in range(5)]
        assert waits == [0, 0, 0, 0, 0]  # five attempts go ahead; the fifth sets the lock
        locked = await backoff.begin(key, t + 5)
        assert locked == pytest.approx(60 - 1, abs=0.01)  # 60 s from the fifth attempt
        assert await backoff.begin(key, t + 30) == pytest.approx(34, abs=0.01)  # not counted
        assert await backoff.begin(key, t + 64.5) == 0  # the lock is over: one more try
        assert await backoff.begin(key, t + 65) == pytest.approx(120 - 0.5, abs=0.01)
        # a success wipes it
        await backoff.reset(key)
        assert [await backoff.begin(key, t + 70 + i) for i in range(5)] == [0] * 5
        assert await backoff.begin(key, t + 76) > 0

    run(scenario())


@pytest.mark.parametrize("backoff", backoffs(), ids=["memory", "redis"])
def test_accounts_do_not_share_a_budget(backoff):
    a, b = f"test-{uuid.uuid4().hex}", f"test-{uuid.uuid4().hex}"

    async def scenario():
        for i in range(6):
            await backoff.begin(a, 2_000_000.0 + i)
        assert await backoff.begin(a, 2_000_007.0) > 0
        assert await backoff.begin(b, 2_000_007.0) == 0

    run(scenario())


def test_parallel_guesses_cannot_slip_through_the_lock():
    """Counted before the password is checked, atomically: 50 guesses at once in Redis get
    five tries, not fifty."""
    backoff = lockout.RedisBackoff(REDIS_URL)
    key = f"test-{uuid.uuid4().hex}"

    async def burst():
        return await asyncio.gather(*(backoff.begin(key, 3_000_000.0) for _ in range(50)))

    waits = run(burst())
    assert sum(1 for w in waits if w == 0) == lockout.FREE_ATTEMPTS


def test_a_broken_redis_falls_back_to_this_process():
    backoff = lockout.RedisBackoff("redis://127.0.0.1:1/0")  # nothing listens there
    key = f"test-{uuid.uuid4().hex}"

    async def scenario():
        return [await backoff.begin(key, 4_000_000.0 + i) for i in range(6)]

    assert run(scenario())[-1] > 0
