"""The declarative base of every table and the column types they share."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from sqlalchemy import DateTime, Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import declarative_base
from sqlalchemy.types import TypeDecorator, TypeEngine

# One base, so one metadata holds every table (Alembic's autogenerate, the test databases).
Base = declarative_base()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware datetimes on every backend: stored as naive UTC, read back as UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; times must be timezone-aware")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


class Money(TypeDecorator):
    """Exact decimals everywhere: NUMERIC on PostgreSQL, text on SQLite (which has no decimal)."""

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int = 10, scale: int = 2):
        super().__init__(precision, scale)
        self.precision, self.scale = precision, scale

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(self.precision, self.scale))

    def process_bind_param(self, value: Decimal | int | float | str | None,
                           dialect: Dialect) -> Decimal | str | None:
        if value is None:
            return None
        value = Decimal(value)
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Decimal | str | None,
                             dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)
