"""Alembic environment: the same migrations for SQLite (embedded) and PostgreSQL."""

from alembic import context
from sqlalchemy import engine_from_config, pool

import bot.analytics.models  # noqa: F401  (the conversation log)
import bot.crm.models  # noqa: F401  (the customer history)
import bot.handover.models  # noqa: F401  (desk and handover tables)
import bot.persistence.tables  # noqa: F401  (counters, channel state, outbox)
from bot.persistence.types import Base
from bot.settings import get_settings

config = context.config
if not config.get_main_option("sqlalchemy.url"):
    config.set_main_option("sqlalchemy.url", get_settings().database_url)
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
        future=True,
    )
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
