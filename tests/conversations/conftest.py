"""A seeded demo database shared by the format and runner tests of the conversation suite
(seeding takes seconds: once per module, not once per test)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    """A migrated SQLite database with bot.crm.seed's demo data; settings point at it."""
    from bot.crm.seed import seed_demo
    from bot.persistence import db
    from bot.persistence.db import migrate
    from bot.settings import reset_settings
    from tests.conftest import use_database

    patch = pytest.MonkeyPatch()
    folder = tmp_path_factory.mktemp("conversations-db")
    url = f"sqlite:///{folder / 'crm.db'}"
    use_database(patch, url, folder / "var")
    migrate(url)
    seed_demo()
    yield url
    db.get_engine(url).dispose()
    patch.undo()
    reset_settings()
    db.get_engine.cache_clear()
