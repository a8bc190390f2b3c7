"""Rasa's event stream, as the SQL event broker writes it (table `events`: id, sender_id, data).

The one reader of that table for the processes that follow it: the desk (a few times a second,
so that customers' messages reach the agent's screen without touching the Rasa server) and the
log worker (`bot.log_worker`, which builds the conversation log from it). Neither imports
the other. In the embedded profile Rasa's SQL broker writes the table; in production the log
worker's relay writes the same rows from RabbitMQ (`bot.event_relay`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, ProgrammingError

from bot.persistence.readers import reader
from bot.persistence.reconnect import once_more
from bot.settings import get_settings


@dataclass(frozen=True)
class StreamEvent:
    id: int
    sender_id: str
    data: dict[str, Any]


_METADATA = MetaData()
# As rasa/core/brokers/sql.py defines it (SQLBrokerEvent).
EVENTS = Table("events", _METADATA, Column("id", Integer, primary_key=True),
               Column("sender_id", String(255)), Column("data", Text))
# The keys of the messages the production relay has stored (bot.event_relay).
RELAYED = Table("relayed_messages", _METADATA, Column("key", String(64), primary_key=True),
                Column("relayed_at", DateTime(timezone=True), nullable=False, index=True))


@lru_cache(maxsize=4)
def _engine(url: str):
    connect_args = {"timeout": 30} if url.startswith("sqlite") else {}
    return create_engine(url, future=True, pool_pre_ping=True, connect_args=connect_args)


def _url(url: str | None) -> str:
    return url or get_settings().events_database_url


def engine(url: str | None = None) -> Engine:
    """The event stream database's engine (the settings' by default)."""
    return _engine(_url(url))


def create_tables(url: str | None = None) -> None:
    """The stream's tables, where they are missing (Rasa's SQL broker creates `events` itself)."""
    _METADATA.create_all(engine(url))


def latest_id(url: str | None = None) -> int:
    try:
        with _engine(_url(url)).connect() as c:
            return int(c.execute(text("SELECT COALESCE(MAX(id), 0) FROM events")).scalar_one())
    except (OperationalError, ProgrammingError):  # Rasa has not created the table yet
        return 0


def _rows_after(engine: Engine, last_id: int, limit: int) -> list[Any]:
    # one statement: on PostgreSQL the reader's autocommit connection, without the pool's ping,
    # BEGIN and ROLLBACK around it (the desk reads the stream ten times a second)
    with reader(engine).connect() as c:
        return c.execute(text("SELECT id, sender_id, data FROM events WHERE id > :last "
                              "ORDER BY id LIMIT :limit"),
                         {"last": last_id, "limit": limit}).all()


def read_after(last_id: int, limit: int = 500, url: str | None = None) -> list[StreamEvent]:
    try:
        rows = once_more(_rows_after, _engine(_url(url)), last_id, limit)
    except (OperationalError, ProgrammingError):
        return []
    events = []
    for row in rows:
        try:
            data = json.loads(row[2])
        except (TypeError, ValueError):
            data = {}
        events.append(StreamEvent(int(row[0]), row[1] or "", data))
    return events
