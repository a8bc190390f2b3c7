"""Each profile really stores where it says: SQLite files (embedded), PostgreSQL and Redis
(production)."""

from __future__ import annotations

import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from sqlalchemy import create_engine, text

from tests.conftest import pg_url
from tests.integration.desk_client import tracker_events

pytestmark = pytest.mark.integration


def _tickets(r: redis.Redis, key: str) -> list[int]:
    """The ticket numbers of Rasa's lock (rasa.core.lock.TicketLock) stored at `key`."""
    raw = r.get(key)
    return [json.loads(t)["number"] for t in json.loads(raw)["tickets"]] if raw else []


def _release(r: redis.Redis, key: str, number: int) -> None:
    """Removes ticket `number` from the lock, leaving the others' (compare and set)."""
    with r.pipeline() as pipe:
        while True:
            try:
                pipe.watch(key)
                lock = json.loads(pipe.get(key))
                lock["tickets"] = [t for t in lock["tickets"] if json.loads(t)["number"] != number]
                pipe.multi()
                pipe.set(key, json.dumps(lock))
                pipe.execute()
                return
            except redis.WatchError:
                continue


def test_tracker_and_lock_stores_of_the_profile(stack, sender):
    if stack.profile == "embedded":
        stack.say(sender, "ciao")
        assert stack.database_url.startswith("sqlite:")
        with sqlite3.connect(stack.var_dir / "rasa-tracker.db") as conn:
            rows = conn.execute("select count(*) from events where sender_id = ?",
                                (sender,)).fetchone()
        assert rows[0] > 0
        return
    assert stack.database_url.startswith("postgresql:")
    from rasa.core.lock import TicketLock

    # The conversation's lock, as another Rasa process holding it would leave it in Redis (the
    # lock store of endpoints.production.yml: key prefix "sportello"). A message must wait
    # behind it, in the same key, and go through once it is released.
    r = redis.Redis(host=stack.env["REDIS_HOST"], port=int(stack.env["REDIS_PORT"]),
                    db=int(stack.env["REDIS_DB"]))
    key = f"sportello:lock:{sender}"
    held = TicketLock(sender)
    ours = held.issue_ticket(60)  # a backstop: a ticket expires on its own
    r.set(key, held.dumps())
    with ThreadPoolExecutor(1) as pool:
        reply = pool.submit(stack.say, sender, "ciao")
        try:
            deadline = time.monotonic() + 30
            while len(_tickets(r, key)) < 2:  # the server takes a ticket behind ours
                assert time.monotonic() < deadline, _tickets(r, key)
                assert not reply.done(), reply.result()
                time.sleep(0.05)
            assert _tickets(r, key) == [ours, ours + 1]
            # while we hold the lock, the message waits: not in the tracker yet
            assert not reply.done()
            assert not [e for e in tracker_events(stack.rasa_url, sender) if e["event"] == "user"]
        finally:
            if ours in _tickets(r, key):
                _release(r, key, ours)
        assert "assistente virtuale" in reply.result(timeout=60)
    assert r.get(key) is None  # the server removed the lock when its turn was over
    engine = create_engine(pg_url(stack.env["RASA_TRACKER_DB"]), future=True)
    with engine.connect() as conn:
        count = conn.execute(text("select count(*) from events where sender_id = :s"),
                             {"s": sender}).scalar_one()
    engine.dispose()
    assert count > 0
