"""What the messaging connectors remember between requests, in the shared database (so it
holds across restarts and across Rasa processes): delivered message ids and the options last
sent to each recipient. Synchronous; connectors call these through `bot.persistence.db.run`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from bot.persistence import tables
from bot.persistence.db import session_scope

SEEN_DAYS = 7  # platforms redeliver for a few days at most


def first_delivery(channel: str, message_id: str) -> bool:
    """Record a delivered message id; False when it was delivered before (a duplicate)."""
    try:
        with session_scope() as s:
            s.add(tables.ChannelMessage(channel=channel, message_id=message_id[:255]))
    except IntegrityError:
        return False
    return True


def forget_old_deliveries(days: int = SEEN_DAYS) -> int:
    cutoff = datetime.now(timezone.utc) - timedelta(days=days)
    with session_scope() as s:
        return s.execute(delete(tables.ChannelMessage)
                         .where(tables.ChannelMessage.received_at < cutoff)).rowcount


def remember_options(channel: str, recipient: str, options: list[dict]) -> None:
    """Replace the options last sent to the recipient ([{title, payload}])."""
    data = json.dumps([{"title": o["title"], "payload": o["payload"]} for o in options])
    with session_scope() as s:
        row = s.execute(select(tables.ChannelOptions).where(
            tables.ChannelOptions.channel == channel, tables.ChannelOptions.recipient == recipient)
        ).scalar_one_or_none()
        if row is None:
            s.add(tables.ChannelOptions(channel=channel, recipient=recipient, options=data))
        else:
            row.options, row.sent_at = data, datetime.now(timezone.utc)
    return None


def take_options(channel: str, recipient: str) -> list[dict]:
    """The options last sent to the recipient, forgotten at once: they answer one message."""
    with session_scope() as s:
        row = s.execute(select(tables.ChannelOptions).where(
            tables.ChannelOptions.channel == channel, tables.ChannelOptions.recipient == recipient)
        ).scalar_one_or_none()
        if row is None:
            return []
        options = json.loads(row.options)
        s.delete(row)
        return options
