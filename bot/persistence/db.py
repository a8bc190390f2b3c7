"""Engine, sessions and migrations of the customer history."""

from __future__ import annotations

import asyncio
import itertools
from contextlib import contextmanager
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool, QueuePool

from bot.persistence.readers import reader
from bot.settings import ROOT, get_settings

T = TypeVar("T")

if TYPE_CHECKING:  # alembic and sqlite3 are imported only where they are used
    from sqlite3 import Connection as SQLiteConnection

    from alembic.config import Config
    from sqlalchemy.pool import _ConnectionRecord


_WRITES = itertools.count(1)
_last_write = 0
WRITING = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def writes() -> int:
    """A number that changes whenever this process writes to any database through SQLAlchemy:
    what it read before is possibly stale once it differs (bot/crm/card.py's turn cache)."""
    return _last_write


def _count_writes(engine: Engine) -> None:
    @event.listens_for(engine, "before_cursor_execute")
    def _written(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        global _last_write
        if statement.lstrip()[:7].upper().startswith(WRITING):
            _last_write = next(_WRITES)  # itertools.count is atomic across threads


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # hide_parameters: a database error quotes no customer value in its message (logs).
        # A pool of open connections (SQLAlchemy 1.4 gives SQLite files none): opening one and
        # setting its pragmas for every read was most of an identity card's time.
        engine = create_engine(url, future=True, hide_parameters=True, poolclass=QueuePool,
                               pool_size=5, max_overflow=10,
                               connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: SQLiteConnection,  # pragma: no cover - trivial
                            _record: _ConnectionRecord) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()
    else:
        engine = create_engine(url, future=True, pool_pre_ping=True, pool_size=10,
                               max_overflow=10, hide_parameters=True)
    _count_writes(engine)
    return engine


@lru_cache(maxsize=8)
def get_engine(url: str | None = None) -> Engine:
    return make_engine(url or get_settings().database_url)


def get_sessionmaker(url: str | None = None) -> sessionmaker:
    return sessionmaker(bind=get_engine(url), future=True, expire_on_commit=False)


@contextmanager
def reading_scope(url: str | None = None) -> Iterator[Session]:
    """A session for reads only (nothing it does is committed), on `bot.persistence.readers`'
    engine: on PostgreSQL without psycopg2's BEGIN, the COMMIT and the pool's ping before
    lending a connection, three of the identity card's ten round trips at every turn
    (bench/profile.py). The caller reads once more when a connection PostgreSQL closed fails
    (`bot.persistence.reconnect.once_more`)."""
    session = Session(bind=reader(get_engine(url)), future=True)
    try:
        yield session
    finally:
        session.close()


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A transaction: committed when the block ends, rolled back on error."""
    session = get_sessionmaker(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url or get_settings().database_url)
    return cfg


def migrate(url: str | None = None) -> None:
    """Create or upgrade the schema to the newest migration."""
    from alembic import command

    url = url or get_settings().database_url
    if url.startswith("sqlite"):
        make_engine(url).dispose()  # creates the folder of the file
    with _one_migration_at_a_time(url):
        command.upgrade(alembic_config(url), "head")


# The PostgreSQL advisory lock key of migrations (any constant shared by every process).
MIGRATION_LOCK_KEY = 0x53504F52  # "SPOR"


@contextmanager
def _one_migration_at_a_time(url: str) -> Iterator[None]:
    """Processes that start together (a desk and a log worker, replicas, a migration job) each
    migrate: without a lock, two could both see a table missing and both create it (the second
    fails). PostgreSQL: an advisory lock; SQLite: a lock file beside the database."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if not path or path == ":memory:":
            yield
            return
        import fcntl

        with open(f"{path}.migrate-lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return
    # autocommit: the lock's session is not left idle in a transaction for the migration
    engine = create_engine(url, future=True, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")
            try:
                yield
            finally:
                connection.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")
    finally:
        engine.dispose()


def ensure_pg_database(url: str) -> None:
    """Create the PostgreSQL database of `url` if it does not exist yet."""
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT",
                          future=True)
    try:
        with admin.connect() as c:
            exists = c.exec_driver_sql("SELECT 1 FROM pg_database WHERE datname = %s",
                                       (target.database,)).first()
            if not exists:
                c.exec_driver_sql(f'CREATE DATABASE "{target.database}"')
    finally:
        admin.dispose()


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a synchronous database function in a worker thread, so that an async server (Rasa's
    channels, the action server, the desk) never waits on the database in its event loop."""
    return await asyncio.to_thread(partial(fn, *args, **kwargs))
