"""Reads that need no transaction, on PostgreSQL without the round trips of one.

psycopg2 opens a transaction with a BEGIN of its own before a connection's first statement, and
the pool ends it with a ROLLBACK (or the session with a COMMIT) when the connection goes back:
two round trips, and two statements for the server, around every read. A read of one statement
(or of several that need not see one snapshot: in PostgreSQL's default READ COMMITTED each
statement of a transaction sees what was committed before it started anyway) gives the same
rows in autocommit. Switching a pooled connection to autocommit and back costs a round trip each
way in psycopg2, so reads get an engine of their own whose connections are in autocommit from
the start: `reader(engine)`, made once per engine and disposed with it.

The reader's pool lends connections without testing them first (`pool_pre_ping`, a round trip
per checkout): a connection PostgreSQL closed (a restart) fails the first read that uses it, the
pool drops every connection made before, and the caller reads once more
(`bot.persistence.reconnect`). Reads are always safe to repeat.
"""

from __future__ import annotations

import threading
import weakref

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

_READERS: "weakref.WeakKeyDictionary[Engine, Engine]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def reader(engine: Engine) -> Engine:
    """The engine for `engine`'s reads: on PostgreSQL its autocommit twin (the same database
    and pool sizes), otherwise `engine` itself."""
    if engine.dialect.name != "postgresql":
        return engine
    with _LOCK:
        twin = _READERS.get(engine)
        if twin is None:
            pool = engine.pool
            twin = create_engine(engine.url, future=True, isolation_level="AUTOCOMMIT",
                                 pool_size=getattr(pool, "size", lambda: 5)(),
                                 max_overflow=getattr(pool, "_max_overflow", 10),
                                 hide_parameters=engine.hide_parameters)
            event.listen(engine, "engine_disposed", lambda _engine: twin.dispose())
            _READERS[engine] = twin
        return twin
