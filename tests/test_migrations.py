"""Processes that start together each migrate the customer history (the desk and the log worker
of a stack, replicas, a Kubernetes migration job): one migration at a time
(bot.persistence.db._one_migration_at_a_time), on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import create_engine, inspect

from bot.persistence.db import _one_migration_at_a_time
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


def test_a_migration_waits_while_another_holds_the_lock(empty_database):
    with _one_migration_at_a_time(empty_database):
        waiting = _migrating(empty_database)
        with pytest.raises(subprocess.TimeoutExpired):  # blocked, not failed
            waiting.wait(5)
        assert "customers" not in _tables(empty_database)
    output = waiting.communicate(timeout=240)[0]
    assert waiting.returncode == 0, output
    assert "customers" in _tables(empty_database)
