"""The production event relay (bot.event_relay) on the real engines: Rasa's own Pika broker
publishes to RabbitMQ, the relay stores into PostgreSQL. Every event exactly once, in order,
whatever happens between the commit and the acknowledgement, and with two relays running."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from bot import event_relay, event_stream
from bot.settings import Settings
from tests.conftest import create_pg_database, drop_pg_database, pg_url


@pytest.fixture
def relay_settings() -> Iterator[Settings]:
    """A database of its own, an exchange and a queue of their own; Rasa's broker as the Rasa
    server runs it (bot/rasa_patches.py)."""
    from bot import rasa_patches

    rasa_patches.apply()
    name = create_pg_database()
    queue = f"sportello-test-relay-{uuid.uuid4().hex[:8]}"
    settings = Settings(profile="production", events_database_url=pg_url(name),
                        rabbitmq_exchange=queue, rabbitmq_queue=queue)
    event_stream.create_tables(settings.events_database_url)
    try:
        yield settings
    finally:
        asyncio.run(event_relay.drop(queue, queue, settings))
        event_stream.engine(settings.events_database_url).dispose()
        drop_pg_database(name)


def _events(n: int, start: int = 0) -> list[dict]:
    return [{"event": "user", "sender_id": f"s{i % 7}", "text": f"message {i}",
             "timestamp": 1_700_000_000 + i / 1000} for i in range(start, start + n)]


async def _publish(settings: Settings, events: list[dict]) -> None:
    """Through Rasa's Pika event broker, as the Rasa server does (endpoints.production.yml)."""
    import rasa.shared.core.events  # noqa: F401 (loaded in a Rasa server; the broker uses it)
    from rasa.core.brokers.pika import PikaEventBroker

    broker = PikaEventBroker(settings.rabbitmq_host, settings.rabbitmq_user,
                             settings.rabbitmq_password, port=settings.rabbitmq_port,
                             queues=[settings.rabbitmq_queue],
                             exchange_name=settings.rabbitmq_exchange)
    await broker.connect()
    for event in events:
        broker.publish(event)
    while broker._background_tasks:  # every publish confirmed by RabbitMQ
        await asyncio.sleep(0.01)
    await broker.close()


def _stored(settings: Settings) -> list[dict]:
    with event_stream.engine(settings.events_database_url).connect() as c:
        rows = c.execute(select(event_stream.EVENTS.c.sender_id, event_stream.EVENTS.c.data)
                         .order_by(event_stream.EVENTS.c.id)).all()
    for sender, data in rows:
        assert json.loads(data)["sender_id"] == sender
    return [json.loads(data) for _, data in rows]


def _wait_for(settings: Settings, n: int, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stored = _stored(settings)
        if len(stored) >= n:
            return stored
        time.sleep(0.05)
    return _stored(settings)


class Relay:
    """`event_relay.relay` in a thread, as the log worker runs it."""

    def __init__(self, settings: Settings) -> None:
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=asyncio.run,
                                       args=(event_relay.relay(self.stopping, settings),),
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


def test_every_event_once_in_order(relay_settings):
    relay = Relay(relay_settings)
    try:
        sent = _events(500)
        asyncio.run(_publish(relay_settings, sent))
        assert _wait_for(relay_settings, len(sent)) == sent
    finally:
        relay.stop()


def test_events_published_while_no_relay_runs_wait_in_the_queue(relay_settings):
    asyncio.run(_publish(relay_settings, []))  # Rasa declares the exchange and the queue
    sent = _events(50)
    asyncio.run(_publish(relay_settings, sent))
    assert _stored(relay_settings) == []
    relay = Relay(relay_settings)
    try:
        assert _wait_for(relay_settings, len(sent)) == sent
    finally:
        relay.stop()


def test_a_relay_that_dies_after_the_commit_counts_nothing_twice(relay_settings, monkeypatch):
    """The worst moment to die: the batch is committed, not yet acknowledged. RabbitMQ gives the
    messages again (to the relay's next connection); they are recognised and only acknowledged."""
    real_store = event_relay.store
    deaths = []

    def store_then_die(bodies, url=None):
        n = real_store(bodies, url)
        if not deaths:
            deaths.append(n)
            raise ConnectionError("killed between the commit and the acknowledgement")
        return n

    monkeypatch.setattr(event_relay, "store", store_then_die)
    monkeypatch.setattr(event_relay, "RETRY_SECONDS", 0.1)
    asyncio.run(_publish(relay_settings, []))
    sent = _events(300)
    asyncio.run(_publish(relay_settings, sent))
    relay = Relay(relay_settings)
    try:
        stored = _wait_for(relay_settings, len(sent))
    finally:
        relay.stop()
    assert deaths and deaths[0] > 0
    assert _stored(relay_settings) == stored == sent
    # what is not acknowledged goes back to the queue when the relay's connection closes
    assert _queue_depth(relay_settings) == 0


def test_a_database_away_when_the_relay_starts_is_waited_for(relay_settings, monkeypatch):
    """The relay's first step (creating the stream's tables) failing once, as with the database
    not yet up, is retried like any later failure: the relay does not end."""
    real_create = event_stream.create_tables
    failures = []

    def away_once(url=None):
        if not failures:
            failures.append(url)
            raise ConnectionError("the database is not up yet")
        real_create(url)

    monkeypatch.setattr(event_stream, "create_tables", away_once)
    monkeypatch.setattr(event_relay, "RETRY_SECONDS", 0.1)
    relay = Relay(relay_settings)
    try:
        sent = _events(20)
        asyncio.run(_publish(relay_settings, sent))
        assert _wait_for(relay_settings, len(sent)) == sent
    finally:
        relay.stop()
    assert failures == [relay_settings.events_database_url]


def test_a_standby_relay_takes_over_without_gaps_or_doubles(relay_settings):
    first, second = Relay(relay_settings), Relay(relay_settings)
    try:
        before = _events(200)
        asyncio.run(_publish(relay_settings, before))
        assert _wait_for(relay_settings, len(before)) == before
        first.stop()
        after = _events(200, start=200)
        asyncio.run(_publish(relay_settings, after))
        assert _wait_for(relay_settings, 400) == before + after
    finally:
        second.stop()
        if first.thread.is_alive():
            first.stop()


def test_a_message_that_is_not_an_event_is_dropped_and_the_rest_stored(relay_settings):
    bodies = [json.dumps(e).encode() for e in _events(3)]
    bodies.insert(1, b"\xff not json")
    bodies.insert(2, b'{"no": "event"}')
    bodies.insert(3, json.dumps(_events(1, start=50)[0]).encode("utf-16"))  # not UTF-8
    bodies.insert(4, b"\xef\xbb\xbf" + json.dumps(_events(1, start=60)[0]).encode())  # a BOM
    assert event_relay.store(bodies, relay_settings.events_database_url) == 3
    assert event_relay.store(bodies, relay_settings.events_database_url) == 0
    assert _stored(relay_settings) == _events(3)


def test_a_turns_message_is_stored_as_its_events_in_order_once(relay_settings):
    """The tracker store's outbox publishes a turn as one message (bot/event_outbox.py): its
    events become rows, in order, each exactly as Rasa's SQL event broker writes an event; the
    same message delivered again adds nothing. Single events and turns mix in one batch."""
    from bot import event_outbox

    url = relay_settings.events_database_url
    events = [{k: v for k, v in e.items() if k != "sender_id"} for e in _events(12)]
    turns = [event_outbox.turn_body("s1", events[i:i + 4]).encode() for i in (0, 4, 8)]
    single = json.dumps({**_events(1, start=99)[0], "sender_id": "s1"}).encode()
    assert event_relay.store([turns[0], single, turns[1]], url) == 9
    assert event_relay.store([turns[1], turns[2], single], url) == 4  # only the new turn
    expected = [{"sender_id": "s1", **e} for e in events]  # as Rasa writes them
    expected = expected[:4] + [json.loads(single)] + expected[4:]
    assert _stored(relay_settings) == expected
    with event_stream.engine(url).connect() as c:
        rows = c.execute(select(event_stream.EVENTS.c.data)
                         .order_by(event_stream.EVENTS.c.id)).scalars().all()
    assert rows[:4] == [json.dumps(e) for e in expected[:4]]  # the SQL broker's bytes


def test_a_turn_with_anything_but_events_is_dropped(relay_settings):
    url = relay_settings.events_database_url
    bad = [b"[]", b'[{"event": "user", "sender_id": "s1"}, {"no": "event"}]', b"[1, 2]"]
    good = json.dumps(_events(2)).encode()
    assert event_relay.store(bad + [good], url) == 2
    assert _stored(relay_settings) == _events(2)


def test_old_keys_are_forgotten(relay_settings):
    from datetime import datetime, timedelta, timezone

    url = relay_settings.events_database_url
    event_relay.store([json.dumps(e).encode() for e in _events(4)], url)
    later = datetime.now(timezone.utc) + event_relay.KEYS_KEPT + timedelta(minutes=1)
    assert event_relay.forget_old_keys(url, now=datetime.now(timezone.utc)) == 0
    assert event_relay.forget_old_keys(url, now=later) == 4


def _queue_depth(settings: Settings) -> int:
    async def depth() -> int:
        import aio_pika

        connection = await aio_pika.connect(host=settings.rabbitmq_host,
                                            port=settings.rabbitmq_port,
                                            login=settings.rabbitmq_user,
                                            password=settings.rabbitmq_password)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(settings.rabbitmq_queue, durable=True,
                                                passive=True)
            return queue.declaration_result.message_count

    return asyncio.run(depth())
