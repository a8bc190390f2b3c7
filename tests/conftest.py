"""Shared fixtures: real databases (SQLite and PostgreSQL), settings per test."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def use_database(monkeypatch, url: str, var_dir: Path) -> None:
    """Point Sportello's settings at `url` for this test."""
    from bot.persistence import db
    from bot.settings import reset_settings

    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SPORTELLO_VAR_DIR", str(var_dir))
    # the embedded profile, whatever a running production stack left in the environment
    monkeypatch.setenv("SPORTELLO_PROFILE", "embedded")
    monkeypatch.setenv("OTP_DELIVERY", "outbox")
    # no Rasa server: the actions' own calls to it (actions/rasa_nlu.py) find none, whatever
    # stack is running
    from bot.launcher import free_port

    monkeypatch.setenv("RASA_URL", f"http://127.0.0.1:{free_port()}")
    reset_settings()
    db.get_engine.cache_clear()


def create_pg_database(template: str | None = None) -> str:
    """A new PostgreSQL database (a copy of `template`, when given); its name."""
    name = f"sportello_test_{uuid.uuid4().hex[:10]}"
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", future=True)
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'
                          + (f' TEMPLATE "{template}"' if template else "")))
    engine.dispose()
    return name


def drop_pg_database(name: str) -> None:
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", future=True)
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def pg_url(name: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, monkeypatch, tmp_path):
    """A fresh, migrated customer-history database on each backend."""
    from bot.persistence import db
    from bot.persistence.db import migrate

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.db'}"
        use_database(monkeypatch, url, tmp_path / "var")
        migrate(url)
        yield url
    else:
        name = create_pg_database()
        url = pg_url(name)
        use_database(monkeypatch, url, tmp_path / "var")
        migrate(url)
        yield url
        db.get_engine(url).dispose()
        db.get_engine.cache_clear()
        drop_pg_database(name)
    from bot.settings import reset_settings

    reset_settings()


def _seed_template(url: str, var_dir: Path) -> None:
    """Migrate and seed the demo data into `url`, then let go of it (no connection left)."""
    from bot.crm.seed import seed_demo
    from bot.persistence import db
    from bot.settings import reset_settings

    with pytest.MonkeyPatch.context() as mp:
        use_database(mp, url, var_dir)
        db.migrate(url)
        seed_demo(url)
        db.get_engine(url).dispose()
    db.get_engine.cache_clear()
    reset_settings()


@pytest.fixture(scope="session")
def demo_sqlite_template(tmp_path_factory) -> Path:
    """The demo data seeded once per session into a SQLite file, which tests copy: seeding takes
    seconds, a copy milliseconds."""
    folder = tmp_path_factory.mktemp("demo-template")
    _seed_template(f"sqlite:///{folder / 'crm.db'}", folder / "var")
    return folder / "crm.db"


@pytest.fixture(scope="session")
def demo_pg_template(tmp_path_factory):
    """The demo data seeded once per session into a PostgreSQL database, the template of the
    tests' own copies."""
    name = create_pg_database()
    _seed_template(pg_url(name), tmp_path_factory.mktemp("demo-template-pg") / "var")
    yield name
    drop_pg_database(name)


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (its WAL included), with SQLite's backup API."""
    import sqlite3

    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


@pytest.fixture
def demo_sqlite(monkeypatch, tmp_path, demo_sqlite_template) -> str:
    """This test's own SQLite database holding the demo data (`seed_demo()`), and the settings
    pointing at it."""
    copy_sqlite(demo_sqlite_template, tmp_path / "crm.db")
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    use_database(monkeypatch, url, tmp_path / "var")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def demo_database(request, monkeypatch, tmp_path):
    """This test's own database holding the demo data, on each backend."""
    from bot.persistence import db
    from bot.settings import reset_settings

    if request.param == "sqlite":
        yield request.getfixturevalue("demo_sqlite")
        return
    name = create_pg_database(template=request.getfixturevalue("demo_pg_template"))
    url = pg_url(name)
    use_database(monkeypatch, url, tmp_path / "var")
    yield url
    db.get_engine(url).dispose()
    db.get_engine.cache_clear()
    drop_pg_database(name)
    reset_settings()


@pytest.fixture
def sqlite_db(monkeypatch, tmp_path):
    from bot.persistence.db import migrate

    url = f"sqlite:///{tmp_path / 'crm.db'}"
    use_database(monkeypatch, url, tmp_path / "var")
    migrate(url)
    return url


def pytest_collection_modifyitems(config, items):
    """Every test that needs the trained model (model_path, directly or through agent or
    stack) is marked `model`: `make check` leaves them out with `-m "not model"`."""
    for item in items:
        if "model_path" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.model)


@pytest.fixture(scope="session")
def model_path():
    """The trained model (trained once when the data or config changed)."""
    from bot.runner import ensure_model

    return ensure_model()


@pytest.fixture(scope="session")
def agent(model_path):
    from bot.nlu_eval import load_agent

    return load_agent(model_path)


# The real stack (Rasa, action server, desk, site) for tests/integration and tests/security:
# defined once here so that every directory shares the same stacks, one per profile.
from tests.stack import mailbox, platform_api, sender, stack, token  # noqa: E402,F401
