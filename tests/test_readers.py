"""bot.persistence.readers: a twin made while another thread runs a statement on the engine
leaves that statement alone, and is disposed with its engine (PostgreSQL)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import DDL, create_engine, text

from bot.persistence.readers import reader, unsynced_writer
from tests.conftest import create_pg_database, drop_pg_database, pg_url


@pytest.fixture
def engine():
    name = create_pg_database()
    engine = create_engine(pg_url(name), future=True)
    yield engine
    engine.dispose()
    drop_pg_database(name)


def running(watcher, marker: str) -> bool:
    """Whether a statement holding `marker` is on the server (seen from another engine)."""
    with watcher.connect() as c:
        return c.execute(text("SELECT count(*) FROM pg_stat_activity WHERE query LIKE :q "
                              "AND pid <> pg_backend_pid()"),
                         {"q": f"%{marker}%"}).scalar_one() > 0


@pytest.mark.parametrize("make", [reader, unsynced_writer])
def test_a_twin_made_during_a_statement_leaves_it_alone(engine, make):
    """The worker's event relay was creating its tables when the log worker's first read made
    the reader twin of the same engine: SQLAlchemy raised UnboundLocalError in the relay's DDL
    and the relay thread ended (seen in CI on 2026-12-05)."""
    marker = f"twin_{make.__name__}"
    errors: list[BaseException] = []

    def statement() -> None:
        try:
            with engine.connect() as c:
                # DDL: SQLAlchemy reads the engine's listeners before and after it
                c.execute(DDL(f"CREATE TABLE {marker} AS SELECT 1 AS one FROM pg_sleep(1.5)"))
        except BaseException as e:  # noqa: BLE001 - the test reports whatever it was
            errors.append(e)

    watcher = create_engine(engine.url, future=True)
    worker = threading.Thread(target=statement)
    worker.start()
    deadline = time.monotonic() + 30
    while not running(watcher, marker):  # the statement is on the server: past SQLAlchemy's
        assert time.monotonic() < deadline  # first look at the engine's listeners
        time.sleep(0.02)
    watcher.dispose()
    make(engine)  # the engine's first twin of this kind
    worker.join(30)
    assert not worker.is_alive()
    assert errors == []


def test_a_twin_is_disposed_with_its_engine(engine):
    twin = reader(engine)
    with twin.connect() as c:
        assert c.execute(text("SELECT 1")).scalar_one() == 1
    assert twin.pool.checkedin() == 1
    engine.dispose()
    assert twin.pool.checkedin() == 0
    assert reader(engine) is twin  # the same twin, with a new pool, for the engine's next use
    with twin.connect() as c:
        assert c.execute(text("SELECT 2")).scalar_one() == 2
