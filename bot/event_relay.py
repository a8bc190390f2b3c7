"""The production event relay: RabbitMQ → the event stream's table, exactly once.

In production Rasa's Pika event broker publishes every event to a RabbitMQ fanout exchange
(endpoints.production.yml) instead of writing a database row in the middle of each turn. The log
worker (`bot.log_worker`) consumes the durable queue bound to that exchange and stores each event
in the event stream's table (`bot.event_stream`: the same table and rows Rasa's SQL broker writes
in the embedded profile), which the desk and the conversation log follow unchanged.

A message is one event (as Rasa's Pika broker publishes it) or a turn's events, a JSON array of
such messages (as the tracker store's outbox publishes them, `bot.event_outbox`); each event
becomes one row.

Nothing lost, nothing twice: a batch of messages is stored in one transaction together with each
message's key (the SHA-256 of its body: Rasa's events, their sender and their timestamps), and
acknowledged only after the commit. RabbitMQ keeps every message that was not acknowledged, so a
worker stopped or killed at any point loses nothing; a message delivered again (the worker died
between the commit and the acknowledgement) finds its key and is only acknowledged. While
RabbitMQ is away the relay reconnects by itself, and the Rasa servers keep the events they could
not publish in the tracker store's outbox (`bot.event_outbox`) until RabbitMQ is back.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, insert, select

from bot import event_stream
from bot.settings import Settings, get_settings

log = logging.getLogger(__name__)
# Messages per transaction, and how many RabbitMQ hands over before the first is acknowledged.
BATCH = 200
PREFETCH = 2 * BATCH
# A redelivered message comes back within seconds (RabbitMQ requeues it when the connection
# closes); its key is kept far longer than that.
KEYS_KEPT = timedelta(days=1)
RETRY_SECONDS = 2.0
FORGET_EVERY = timedelta(hours=1)
HEARTBEAT_SECONDS = 5
RABBITMQ_TIMEOUT = 10.0


def endpoint_variables(settings: Settings) -> dict[str, str]:
    """The variables endpoints.production.yml reads for the event broker."""
    return {"RABBITMQ_HOST": settings.rabbitmq_host, "RABBITMQ_PORT": str(settings.rabbitmq_port),
            "RABBITMQ_USER": settings.rabbitmq_user,
            "RABBITMQ_PASSWORD": settings.rabbitmq_password,
            "RABBITMQ_EXCHANGE": settings.rabbitmq_exchange,
            "RABBITMQ_QUEUE": settings.rabbitmq_queue}


def message_key(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def store(bodies: list[bytes], url: str | None = None) -> int:
    """Store the events of `bodies` not stored before, in order, in one transaction; the number
    of events stored. A body that is not a Rasa event is logged and skipped (acknowledged with
    the rest: keeping it would block the queue forever)."""
    engine = event_stream.engine(url)
    now = datetime.now(timezone.utc)
    keys = [message_key(b) for b in bodies]
    with engine.begin() as c:
        seen = set(c.execute(select(event_stream.RELAYED.c.key)
                             .where(event_stream.RELAYED.c.key.in_(keys))).scalars())
        rows, new_keys = [], []
        for key, body in zip(keys, bodies):
            if key in seen:
                continue
            seen.add(key)
            new_keys.append({"key": key, "relayed_at": now})
            rows += [{"sender_id": str(event.get("sender_id") or ""), "data": data}
                     for event, data in _events(body)]
        if rows:
            c.execute(insert(event_stream.EVENTS), rows)
        if new_keys:
            c.execute(insert(event_stream.RELAYED), new_keys)
    return len(rows)


def _events(body: bytes) -> list[tuple[dict[str, Any], str]]:
    """The events of a message, each with the text of its row (Rasa's event message, as the SQL
    event broker writes it). A message that is not an event, or an array of them, is dropped."""
    try:  # UTF-8 only, as Rasa writes them (json.loads would also take UTF-16 or a BOM)
        text = body.decode("utf-8")
        decoded = json.loads(text) if not text.startswith("\ufeff") else None
    except (UnicodeDecodeError, ValueError):
        decoded = None
    if _is_event(decoded):
        return [(decoded, text)]
    if isinstance(decoded, list) and decoded and all(_is_event(e) for e in decoded):
        return [(event, json.dumps(event)) for event in decoded]
    log.error("event relay: a message that is not a Rasa event was dropped (%d bytes)",
              len(body))
    return []


def _is_event(decoded: Any) -> bool:
    return isinstance(decoded, dict) and isinstance(decoded.get("event"), str)


def forget_old_keys(url: str | None = None, now: datetime | None = None) -> int:
    """Delete the keys of messages relayed more than `KEYS_KEPT` ago; how many."""
    cutoff = (now or datetime.now(timezone.utc)) - KEYS_KEPT
    with event_stream.engine(url).begin() as c:
        return c.execute(delete(event_stream.RELAYED)
                         .where(event_stream.RELAYED.c.relayed_at < cutoff)).rowcount


async def relay(stopping: threading.Event, settings: Settings | None = None) -> None:
    """Consume the log's queue until `stopping` is set, reconnecting whenever RabbitMQ is away."""
    s = settings or get_settings()
    while not stopping.is_set():
        try:
            # here, so that a database away at the start is waited for like one away later
            event_stream.create_tables(s.events_database_url)
            await _consume(stopping, s)
        # RabbitMQ away, or the database: try again (aio-pika cancels what waits on a channel
        # that closes)
        except (Exception, asyncio.CancelledError) as e:
            log.warning("event relay: %s; retrying in %.0f s", str(e) or type(e).__name__,
                        RETRY_SECONDS)
            await asyncio.sleep(RETRY_SECONDS)


async def _consume(stopping: threading.Event, s: Settings) -> None:
    import aio_pika

    # AMQP heartbeats: a connection RabbitMQ dropped is noticed within seconds even when no
    # message comes
    connection = await aio_pika.connect(host=s.rabbitmq_host, port=s.rabbitmq_port,
                                        login=s.rabbitmq_user, password=s.rabbitmq_password,
                                        timeout=10, heartbeat=HEARTBEAT_SECONDS)
    try:
        await _relay_on(connection, stopping, s)
    finally:
        # closing a connection RabbitMQ dropped can wait for an answer that never comes
        try:
            await asyncio.wait_for(connection.close(), RABBITMQ_TIMEOUT)
        except (Exception, asyncio.CancelledError):
            pass


async def _relay_on(connection: Any, stopping: threading.Event, s: Settings) -> None:
    """Consume the log's queue on `connection` until `stopping` is set or the connection fails;
    every call to RabbitMQ is bounded by RABBITMQ_TIMEOUT (a call on a connection that went
    away mid-way could wait forever, and the relay with it)."""
    import aio_pika

    async def bounded(call: Any) -> Any:
        return await asyncio.wait_for(call, RABBITMQ_TIMEOUT)

    channel = await bounded(connection.channel())
    await bounded(channel.set_qos(prefetch_count=PREFETCH))
    # declared as the Rasa server declares them (rasa/core/brokers/pika.py, the exchange
    # made durable by bot/rasa_patches.py), so that whichever starts first, both agree
    exchange = await bounded(channel.declare_exchange(
        s.rabbitmq_exchange, type=aio_pika.ExchangeType.FANOUT, durable=True))
    queue = await bounded(channel.declare_queue(s.rabbitmq_queue, durable=True))
    await bounded(queue.bind(exchange, ""))
    arrived: asyncio.Queue = asyncio.Queue()
    # one consumer at a time keeps the stream in order; another worker waits as a standby
    # (its consume is refused while this one holds the queue)
    await bounded(queue.consume(arrived.put, no_ack=False, exclusive=True))
    log.warning("event relay: consuming %s", s.rabbitmq_queue)
    forgotten = datetime.min.replace(tzinfo=timezone.utc)
    while not stopping.is_set():
        if connection.is_closed or channel.is_closed:
            raise ConnectionError("the connection to RabbitMQ was closed")
        if datetime.now(timezone.utc) - forgotten > FORGET_EVERY:
            await asyncio.to_thread(forget_old_keys, s.events_database_url)
            forgotten = datetime.now(timezone.utc)
        try:
            first = await asyncio.wait_for(arrived.get(), timeout=0.5)
        except asyncio.TimeoutError:
            continue
        batch = [first]
        while len(batch) < BATCH and not arrived.empty():
            batch.append(arrived.get_nowait())
        await asyncio.to_thread(store, [m.body for m in batch], s.events_database_url)
        # every message up to the last of the batch, on this channel
        await bounded(batch[-1].ack(multiple=True))


async def drop(exchange: str, queue: str, settings: Settings | None = None) -> None:
    """Delete `queue` and `exchange` from the RabbitMQ of `settings`: for throwaway stacks
    (tests, benchmarks), whose durable queue would otherwise outlive them."""
    import aio_pika

    s = settings or get_settings()
    connection = await aio_pika.connect(host=s.rabbitmq_host, port=s.rabbitmq_port,
                                        login=s.rabbitmq_user, password=s.rabbitmq_password,
                                        timeout=10)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)
