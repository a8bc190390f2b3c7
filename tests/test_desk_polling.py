"""The desk's reads of every tenth of a second (bot/desk/live.py): the event stream, the queue's
signature, the open handovers of a batch's conversations, the agents they are assigned to. On
PostgreSQL each is one statement on an autocommit connection lent without a ping
(bot/persistence/readers.py) instead of a ping, a BEGIN, the statement and the end of the
transaction; after PostgreSQL ended the connections (a restart), the next poll reads them once
more on a new one."""

from __future__ import annotations

import json

from sqlalchemy import create_engine, event, insert, text

from bot import event_stream
from bot.desk import live
from bot.handover import service as queue
from bot.handover.models import Handover
from bot.persistence import db, readers
from bot.persistence.db import session_scope
from bot.settings import reset_settings
from tests.conftest import PG_ADMIN_URL, create_pg_database, drop_pg_database, pg_url, use_database


def test_the_desk_polls_in_autocommit_and_survives_a_restart(demo_pg_template, monkeypatch,
                                                             tmp_path):
    name = create_pg_database(template=demo_pg_template)
    url = pg_url(name)
    use_database(monkeypatch, url, tmp_path / "var")
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", future=True)
    event_stream.create_tables(url)
    with event_stream.engine(url).begin() as c:
        c.execute(insert(event_stream.EVENTS), [
            {"sender_id": "web-1", "data": json.dumps({"event": "user", "text": "ciao"})},
            {"sender_id": "web-2", "data": json.dumps({"event": "bot", "text": "Ciao!"})}])
    with session_scope() as s:
        s.add(Handover(conversation_id="web-1", channel="web", state="queued", reason="asked",
                       language="it", skill="general"))

    def end_every_connection() -> None:
        with admin.connect() as c:
            c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})

    def polls() -> tuple:
        events = event_stream.read_after(0, url=url)
        handovers = queue.open_by_conversation([e.sender_id for e in events])
        return ([(e.sender_id, e.data["text"]) for e in events], live._queue_signature(),
                sorted(handovers), live._assigned_agents([h.id for h in handovers.values()]))

    autocommit: list[bool] = []
    try:
        for engine in (db.get_engine(None), event_stream.engine(url)):
            reader = readers.reader(engine)
            assert reader is not engine and reader.pool._pre_ping is False
            for watched in (engine, reader):
                event.listen(watched, "before_cursor_execute", lambda conn, *_: autocommit.append(
                    conn.connection.dbapi_connection.autocommit))
        first = polls()
        assert first[0] == [("web-1", "ciao"), ("web-2", "Ciao!")]
        assert [row[1] for row in first[1]] == ["queued"] and first[2] == ["web-1"]
        assert first[3] == {}  # queued, not assigned to anybody yet
        assert autocommit and all(autocommit), autocommit  # nothing ran in a transaction
        end_every_connection()
        # the desk's loop wraps each read in once_more (as the actions' card load does)
        from bot.persistence.reconnect import once_more

        assert (event_stream.read_after(0, url=url)[0].data["text"] == "ciao"
                and once_more(live._queue_signature) == first[1])
        end_every_connection()
        assert sorted(once_more(queue.open_by_conversation, ["web-1"])) == ["web-1"]
    finally:
        db.get_engine(None).dispose()
        db.get_engine.cache_clear()
        event_stream.engine(url).dispose()
        admin.dispose()
        drop_pg_database(name)
        reset_settings()
