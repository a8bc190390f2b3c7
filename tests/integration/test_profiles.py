"""Each profile really stores where it says: SQLite files (embedded), PostgreSQL and Redis
(production)."""

from __future__ import annotations

import sqlite3

import pytest
import redis
from sqlalchemy import create_engine, text

from tests.conftest import pg_url

pytestmark = pytest.mark.integration


def test_tracker_and_lock_stores_of_the_profile(stack, sender):
    if stack.profile == "embedded":
        stack.say(sender, "ciao")
        assert stack.database_url.startswith("sqlite:")
        with sqlite3.connect(stack.var_dir / "rasa-tracker.db") as conn:
            rows = conn.execute("select count(*) from events where sender_id = ?", (sender,)).fetchone()
        assert rows[0] > 0
        return
    assert stack.database_url.startswith("postgresql:")
    r = redis.Redis(host="127.0.0.1", port=6379)
    before = int(r.info("commandstats").get("cmdstat_set", {}).get("calls", 0))
    stack.say(sender, "ciao")
    after = int(r.info("commandstats").get("cmdstat_set", {}).get("calls", 0))
    assert after > before  # the Redis lock store took the conversation's lock
    engine = create_engine(pg_url(stack.env["RASA_TRACKER_DB"]), future=True)
    with engine.connect() as conn:
        count = conn.execute(text("select count(*) from events where sender_id = :s"),
                             {"s": sender}).scalar_one()
    engine.dispose()
    assert count > 0
