"""The tracker store's outbox: the events a turn publishes to RabbitMQ, stored in the same
transaction as the turn itself, and removed once RabbitMQ has confirmed them.

Rasa's SQL tracker store stores a turn's events and its Pika broker publishes them from the
process's memory: a Rasa server killed between the two (or RabbitMQ restarting while they are on
their way) left turns in the conversations that the conversation log never received. With the
outbox (wired in by `bot.rasa_patches.sql_tracker_store_streams_without_reading`) a turn's
events cannot be stored without their publication being stored too:

- the turn's save writes one row into `sportello_event_outbox` in the tracker store's own
  transaction: the turn's message, a JSON array of its events, each as Rasa's Pika broker would
  send it on its own (`turn_body`). One message per turn instead of one per event: a turn has
  about ten events, and each message cost the Rasa server an outbox row, a publication and a
  confirmation, and RabbitMQ and the relay a message each (bench/RESULTS.md, "Where a turn's
  time goes"); the relay stores the array's events one by one, as before;
- then the Rasa server publishes the conversation's outbox rows in order (its own, and any left
  by a process that died) and deletes those RabbitMQ confirmed. It does so in the background
  (`publish_conversation_soon`): the customer's reply does not wait for RabbitMQ's
  confirmations (a few milliseconds a turn, up to PUBLISH_WAIT_SECONDS while RabbitMQ is away),
  and within a process one publication of a conversation runs at a time, in turn order;
- every Rasa server sweeps, every `SWEEP_EVERY_SECONDS`, the rows older than `ORPHAN_SECONDS`
  (left by a dead process, or by a save while RabbitMQ was away); the age is read on each
  server's clock, so keep the servers' clocks in step (NTP), as for Rasa's own timestamps.

A message may be published twice (two replicas sweeping, a crash between the confirmation and the
delete): the relay (`bot.event_relay`) recognises a message it stored already by its key, so the
log still holds each event once. A conversation's events keep their order: each publisher sends
them in the outbox's order, and the first copy of each is the one the log keeps.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Iterable

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)
from sqlalchemy.exc import DBAPIError

from bot.persistence.readers import reader, unsynced_writer
from bot.persistence.reconnect import once_more

log = logging.getLogger(__name__)

OUTBOX = Table(
    "sportello_event_outbox", MetaData(),
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("sender_id", String(255), nullable=False, index=True),
    Column("body", Text, nullable=False),
    Column("created", Float, nullable=False))

# A row this old was not removed by the process that stored it: it died, or RabbitMQ was away.
# Above the time a save waits for RabbitMQ (PUBLISH_WAIT_SECONDS).
ORPHAN_SECONDS = 8.0
SWEEP_EVERY_SECONDS = 1.0
SWEEP_BATCH = 500
# How long a publication of a conversation's rows waits for RabbitMQ; what is left is swept later.
# (A message that failed while a later one went through reaches the log after it.)
PUBLISH_WAIT_SECONDS = 5.0


def ensure_table(engine: Any) -> None:
    """Create the outbox table in the tracker store's database (Rasa creates its own tables
    the same way); two replicas starting together may race: the loser checks again."""
    try:
        OUTBOX.metadata.create_all(engine)
    except DBAPIError:
        OUTBOX.metadata.create_all(engine)


def body(sender_id: str, event: dict) -> str:
    """The message Rasa's tracker store publishes for an event (`_stream_new_events`) and Rasa's
    Pika broker sends (`_message`): the same bytes, so the relay's key is the same too."""
    return json.dumps({"sender_id": sender_id, **event})


def turn_body(sender_id: str, events: Iterable[dict]) -> str:
    """One message for a turn's events: a JSON array whose items are the messages `body` gives
    (each item, written back with `json.dumps`, is exactly that message)."""
    return json.dumps([{"sender_id": sender_id, **event} for event in events])


def add(session: Any, sender_id: str, dicts: list[dict]) -> None:
    """The outbox row of a turn's events (as `Event.as_dict` gives them), in the caller's
    transaction."""
    if dicts:
        session.execute(insert(OUTBOX), {"sender_id": sender_id,
                                         "body": turn_body(sender_id, dicts),
                                         "created": time.time()})


async def _publish(broker: Any, rows: list[tuple[int, str]]) -> list[int]:
    """Publish `rows`, in order, and wait (at most PUBLISH_WAIT_SECONDS) for RabbitMQ's
    confirmations; the ids confirmed. The messages go out one after the other on the broker's
    channel (aiormq writes them in the order they are sent) and their confirmations are awaited
    together: one at a time would cost a pass of a busy event loop per event."""
    import aio_pika
    import aiormq

    exchange = getattr(broker, "_exchange", None)
    if exchange is None or not broker.is_ready() or not rows:
        return []
    sent = [(row_id, asyncio.ensure_future(exchange.publish(aio_pika.Message(
        text.encode("utf-8"), app_id=broker.rasa_environment,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT), ""))) for row_id, text in rows]
    _, pending = await asyncio.wait([task for _, task in sent], timeout=PUBLISH_WAIT_SECONDS)
    for task in pending:
        task.cancel()
    # an Ack: RabbitMQ routed and stored it (a message nobody's queue took comes back as a
    # Basic.Return, which aio-pika also resolves without an error: not done)
    done = [row_id for row_id, task in sent
            if task.done() and not task.cancelled() and task.exception() is None
            and isinstance(task.result(), aiormq.spec.Basic.Ack)]
    if len(done) < len(rows):
        failed = next((t for _, t in sent if t.done() and not t.cancelled() and t.exception()),
                      None)
        log.warning("events not published yet (%s): %d left in the outbox",
                    type(failed.exception()).__name__ if failed else "no confirmation in time",
                    len(rows) - len(done))
    return done


def _rows(engine: Any, query: Any) -> list[tuple[int, str]]:
    """The rows `query` selects, on the engine's reader (`bot.persistence.readers`: on
    PostgreSQL without the BEGIN and ROLLBACK of a transaction, two round trips a turn)."""
    with reader(engine).connect() as connection:
        return [(r.id, r.body) for r in connection.execute(query)]


def _remove(engine: Any, ids: list[int]) -> None:
    """Delete the published rows, in one statement. On PostgreSQL without waiting for the disk
    (`unsynced_writer`: a crash may forget the delete, and the rows are published again, which
    the relay recognises), which saved a WAL flush per turn, and in autocommit, one round trip
    instead of four."""
    if ids:
        with unsynced_writer(engine).begin() as connection:
            connection.execute(delete(OUTBOX).where(OUTBOX.c.id.in_(ids)))


async def publish_conversation(engine: Any, broker: Any, sender_id: str) -> int:
    """Publish every outbox row of one conversation, oldest first (a row left by a dead process
    goes before this turn's); remove those confirmed; their number. Never raises: the turn is
    stored already, and what is not published now is swept later."""
    try:
        # in a worker thread: the event loop serves the next turns meanwhile
        rows = await asyncio.to_thread(
            once_more, _rows, engine, select(OUTBOX.c.id, OUTBOX.c.body)
            .where(OUTBOX.c.sender_id == sender_id).order_by(OUTBOX.c.id))
        done = await _publish(broker, rows)
        await asyncio.to_thread(once_more, _remove, engine, done)
    except Exception:  # the database away right after the commit: the sweep publishes them
        log.warning("outbox: events of a stored turn left for the sweep", exc_info=True)
        return 0
    return len(done)


# Per conversation, the latest background publication this process started (see below).
_PUBLISHING: dict[str, "asyncio.Task[int]"] = {}


def publish_conversation_soon(engine: Any, broker: Any, sender_id: str) -> "asyncio.Task[int]":
    """`publish_conversation` in a task of the running loop, after the conversation's previous
    publication in this process has ended (so its rows go out in turn order). The turn goes on
    without waiting; a process that stops first leaves the rows to the sweep."""
    previous = _PUBLISHING.get(sender_id)

    async def after_previous() -> int:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])  # publish_conversation never raises
        return await publish_conversation(engine, broker, sender_id)

    task = asyncio.get_running_loop().create_task(after_previous())
    _PUBLISHING[sender_id] = task

    def forget(done: "asyncio.Task[int]") -> None:
        if _PUBLISHING.get(sender_id) is done:
            del _PUBLISHING[sender_id]

    task.add_done_callback(forget)
    return task


async def settled(sender_id: str) -> None:
    """Return once this process's publications of a conversation have ended (the latest waits
    for the ones before it)."""
    task = _PUBLISHING.get(sender_id)
    if task is not None:
        await asyncio.wait([task])


async def sweep(engine: Any, broker: Any) -> int:
    """Publish the rows older than ORPHAN_SECONDS, oldest first; remove those confirmed."""
    rows = await asyncio.to_thread(
        once_more, _rows, engine, select(OUTBOX.c.id, OUTBOX.c.body)
        .where(OUTBOX.c.created < time.time() - ORPHAN_SECONDS)
        .order_by(OUTBOX.c.id).limit(SWEEP_BATCH))
    if not rows:
        return 0
    done = await _publish(broker, rows)
    await asyncio.to_thread(once_more, _remove, engine, done)
    if done:
        log.info("published %d event(s) left in the outbox", len(done))
    return len(done)


async def sweep_forever(engine: Any, broker: Any) -> None:
    """`sweep` every SWEEP_EVERY_SECONDS, for the life of the Rasa server."""
    while True:
        await asyncio.sleep(SWEEP_EVERY_SECONDS)
        try:
            await sweep(engine, broker)
        except Exception:  # the database away: the next sweep tries again
            log.warning("outbox sweep failed; trying again", exc_info=True)
