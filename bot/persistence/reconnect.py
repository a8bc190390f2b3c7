"""A database call tried once more when its pooled connection turned out to be dead.

After PostgreSQL is restarted, every connection a pool kept is dead. SQLAlchemy reports the
first use of one as a `DBAPIError` with `connection_invalidated` set and marks every connection
of that pool made before the error as invalid, so one more try runs on a new connection
("optimistic" disconnect handling, in SQLAlchemy's words). That costs nothing while the
database is up, where testing each connection before lending it (`pool_pre_ping`) costs a round
trip per checkout. Only calls that are safe to repeat may be retried.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, TypeVar

from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)
T = TypeVar("T")


def lost_connection(error: BaseException) -> bool:
    """Whether `error` is SQLAlchemy's report of a connection the database ended."""
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


def once_more(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)`, called a second time if the first call lost its connection."""
    try:
        return fn(*args)
    except Exception as e:
        if not lost_connection(e):
            raise
        log.info("a pooled database connection was lost; trying once more")
        return fn(*args)


async def once_more_async(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """`await fn(*args)`, awaited a second time if the first call lost its connection."""
    try:
        return await fn(*args)
    except Exception as e:
        if not lost_connection(e):
            raise
        log.info("a pooled database connection was lost; trying once more")
        return await fn(*args)
