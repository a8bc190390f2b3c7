"""Processes that start together each migrate the customer history (the desk and the log worker
of a stack, replicas, a Kubernetes migration job): one migration at a time
(bot.persistence.db._one_migration_at_a_time), on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from bot.persistence.db import MIGRATION_LOCK_KEY, _one_migration_at_a_time
from bot.settings import ROOT
from tests.conftest import create_pg_database, drop_pg_database, pg_url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    """The URL of a database with no table yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        name = create_pg_database()
        yield pg_url(name)
        drop_pg_database(name)


def _migrating(url: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import sys; from bot.persistence.db import "
                             "migrate; migrate(sys.argv[1])", url], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _tables(url: str) -> set[str]:
    engine = create_engine(url, future=True)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_four_processes_migrating_a_new_database_at_once_all_succeed(empty_database):
    processes = [_migrating(empty_database) for _ in range(4)]
    outputs = [p.communicate(timeout=240)[0] for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, "\n".join(outputs)
    assert {"customers", "alembic_version"} <= _tables(empty_database)


def _waiting_for_the_lock(process: subprocess.Popen, url: str) -> bool:
    """The process has reached the lock: PostgreSQL shows its advisory lock not granted; with
    SQLite it holds the lock file open (opened just before it asks for the lock)."""
    if url.startswith("sqlite"):
        lock = f"{url.split('///', 1)[-1]}.migrate-lock"
        fds = Path(f"/proc/{process.pid}/fd")
        try:
            return any(os.path.realpath(fd) == lock for fd in fds.iterdir())
        except OSError:
            return False
    engine = create_engine(url, future=True)
    try:
        with engine.connect() as c:
            return bool(c.exec_driver_sql(
                "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND objid = %s", (MIGRATION_LOCK_KEY,)).first())
    finally:
        engine.dispose()


def test_a_migration_waits_while_another_holds_the_lock(empty_database):
    with _one_migration_at_a_time(empty_database):
        waiting = _migrating(empty_database)
        deadline = time.monotonic() + 120
        while not _waiting_for_the_lock(waiting, empty_database):
            assert waiting.poll() is None, waiting.communicate()[0]
            assert time.monotonic() < deadline, "the migration never asked for the lock"
            time.sleep(0.1)
        assert waiting.poll() is None  # blocked at the lock, not failed
        assert "customers" not in _tables(empty_database)
    output = waiting.communicate(timeout=240)[0]
    assert waiting.returncode == 0, output
    assert "customers" in _tables(empty_database)
