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

A write of one statement that a crash may forget (the outbox's delete of rows RabbitMQ
confirmed: published again, recognised by the relay) goes the same way through
`unsynced_writer`, whose commits also do not wait for the disk.
"""

from __future__ import annotations

import os
import threading
import weakref

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool

_TWINS: "dict[str, weakref.WeakKeyDictionary[Engine, Engine]]" = {
    "reader": weakref.WeakKeyDictionary(), "unsynced": weakref.WeakKeyDictionary()}
_LOCK = threading.Lock()


def _twinnable(engine: Engine) -> bool:
    """Whether a twin made from `engine`'s URL reaches the same tables in the same way: not when
    connection options come from elsewhere (Rasa's `POSTGRESQL_SCHEMA` sets the search path in
    its engine's connect arguments, which an engine does not expose) or from the URL itself."""
    return (engine.dialect.name == "postgresql" and not os.environ.get("POSTGRESQL_SCHEMA")
            and "options" not in engine.url.query)


def _twin(engine: Engine, kind: str, **options: object) -> Engine:
    """`engine`'s autocommit twin of `kind` (the same database, pool kind and sizes), made once
    and disposed with it."""
    with _LOCK:
        twin = _TWINS[kind].get(engine)
        if twin is None:
            pool = engine.pool
            sizes = ({"pool_size": pool.size(), "max_overflow": pool._max_overflow}
                     if isinstance(pool, QueuePool) else {"poolclass": type(pool)})
            twin = create_engine(engine.url, future=True, isolation_level="AUTOCOMMIT",
                                 hide_parameters=engine.hide_parameters, **sizes, **options)
            _dispose_with(engine, twin)
            _TWINS[kind][engine] = twin
        return twin


def _dispose_with(engine: Engine, twin: Engine) -> None:
    """Dispose `twin` whenever `engine` is disposed. Not with an `engine_disposed` listener:
    in SQLAlchemy 1.4 a listener added to an engine while another thread executes on it breaks
    that statement (`Connection._execute_*` reads `_has_events` before and after it, and raises
    UnboundLocalError 'event_multiparams' when it changed in between), and twins are made
    lazily, on a first read, while other threads use the engine."""
    dispose = engine.dispose

    def dispose_both(*args: object, **kwargs: object) -> None:
        dispose(*args, **kwargs)
        twin.dispose()

    engine.dispose = dispose_both


def reader(engine: Engine) -> Engine:
    """The engine for `engine`'s reads: on PostgreSQL its autocommit twin, otherwise (or where
    a twin could not reach the same tables) `engine` itself."""
    return _twin(engine, "reader") if _twinnable(engine) else engine


def unsynced_writer(engine: Engine) -> Engine:
    """The engine for single-statement writes that a crash may forget (a cleanup done again
    later): on PostgreSQL an autocommit twin whose commits do not wait for the disk
    (`synchronous_commit` off for its sessions), so such a write is one round trip instead of
    BEGIN, SET LOCAL, the statement and COMMIT; otherwise `engine` itself. (PgBouncer in
    transaction mode refuses startup options: behind it, put `options` in the database URL,
    and the engine itself is used.)"""
    if not _twinnable(engine):
        return engine
    return _twin(engine, "unsynced", connect_args={"options": "-c synchronous_commit=off"})
