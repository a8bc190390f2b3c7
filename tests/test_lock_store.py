"""The production lock store (bot.lock_store) on the real Redis: tickets in order and never
lost, even when two Rasa servers take tickets for one conversation at the same instant; Rasa's
own key and value, so a lock either store wrote is honoured by the other; two round trips a
turn instead of Rasa's seven, none of them blocking the event loop."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid

import pytest
import redis
from rasa.core.lock import TicketLock
from rasa.core.lock_store import RedisLockStore

from bot.lock_store import AtomicRedisLockStore

DB = 12  # a Redis database no other test uses


@pytest.fixture
def conversation() -> str:
    sender = f"lock-test-{uuid.uuid4().hex[:8]}"
    yield sender
    redis.Redis(db=DB).delete(f"sportello:lock:{sender}")


def store() -> AtomicRedisLockStore:
    return AtomicRedisLockStore(host="127.0.0.1", port=6379, db=DB, key_prefix="sportello")


def stored(conversation: str) -> TicketLock | None:
    raw = redis.Redis(db=DB).get(f"sportello:lock:{conversation}")
    return TicketLock.from_dict(json.loads(raw)) if raw else None


def test_two_servers_taking_tickets_at_once_lose_none(conversation):
    """Two Rasa servers (two stores, two connections), four threads each, take 400 tickets for
    one conversation as fast as they can: 400 different numbers, 0 to 399, all in the lock."""
    stores = [store(), store()]
    numbers: list[int] = []
    start = threading.Barrier(8)

    def take(s: AtomicRedisLockStore) -> None:
        start.wait()
        for _ in range(50):
            numbers.append(s.issue_ticket(conversation, 60))

    threads = [threading.Thread(target=take, args=(stores[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(numbers) == list(range(400))
    assert [t.number for t in stored(conversation).tickets] == list(range(400))


def test_a_lock_rasa_wrote_is_honoured_and_ours_reads_as_rasas(conversation):
    """The value is Rasa's `TicketLock`: a ticket held through Rasa's own store comes first,
    and Rasa's store reads the tickets this store wrote."""
    rasa_store = RedisLockStore(host="127.0.0.1", port=6379, db=DB, key_prefix="sportello")
    held = rasa_store.issue_ticket(conversation, 60)
    ours = store().issue_ticket(conversation, 60)
    assert (held, ours) == (0, 1)
    lock = rasa_store.get_lock(conversation)
    assert [t.number for t in lock.tickets] == [0, 1]
    assert lock.now_serving == held and lock.is_locked(ours)
    assert all(59 < t.expires - time.time() <= 60 for t in lock.tickets)


def test_giving_back_the_last_ticket_deletes_the_lock_and_expired_tickets_go(conversation):
    s = store()
    first, second = s.issue_ticket(conversation, 60), s.issue_ticket(conversation, 60)
    s.cleanup(conversation, first)
    assert [t.number for t in stored(conversation).tickets] == [second]
    s.cleanup(conversation, second)
    assert stored(conversation) is None
    # a ticket whose holder died (expired) does not block the next one, nor keep the lock
    s.issue_ticket(conversation, 0.05)
    time.sleep(0.1)  # the ticket's lifetime, not a synchronisation
    alive = s.issue_ticket(conversation, 60)  # numbered after the valid tickets, as in Rasa
    lock = stored(conversation)
    assert [t.number for t in lock.tickets] == [alive] and not lock.is_locked(alive)
    s.issue_ticket(conversation, 0.05)
    time.sleep(0.1)
    s.update_lock(conversation)
    assert [t.number for t in stored(conversation).tickets] == [alive]
    s.cleanup(conversation, alive)
    assert stored(conversation) is None
    s.cleanup(conversation, 12345)  # no lock: nothing to do, no error
    assert stored(conversation) is None


def test_a_turn_waits_for_the_one_before_and_costs_two_round_trips(conversation):
    """Rasa's `lock()` on this store: a second turn of the conversation waits until the first
    gives its ticket back; an uncontended turn is two commands to Redis (a ticket, given
    back)."""
    s = store()
    commands: list[str] = []
    order: list[str] = []

    async def turn(name: str, hold: asyncio.Event | None, started: asyncio.Event) -> None:
        async with s.lock(conversation, 60, wait_time_in_seconds=0.01) as lock:
            assert isinstance(lock, TicketLock) and lock.conversation_id == conversation
            started.set()
            order.append(f"{name} in")
            if hold is not None:
                await hold.wait()
            order.append(f"{name} out")

    async def scenario() -> None:
        async with s.lock(f"{conversation}-warm", 60):  # Redis learns the scripts
            pass
        client, _, _ = s._asyncio_client()
        execute = client.execute_command

        async def counted(*args, **kwargs):
            commands.append(str(args[0]))
            return await execute(*args, **kwargs)

        client.execute_command = counted
        await turn("alone", None, asyncio.Event())
        assert commands == ["EVALSHA", "EVALSHA"], commands
        hold, first_in, second_in = asyncio.Event(), asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(turn("first", hold, first_in))
        await first_in.wait()
        second = asyncio.create_task(turn("second", None, second_in))
        for _ in range(20):  # the second turn polls the lock meanwhile
            await asyncio.sleep(0.01)
        assert not second_in.is_set()
        hold.set()
        await asyncio.gather(first, second)

    asyncio.run(scenario())
    assert order == ["alone in", "alone out", "first in", "first out", "second in", "second out"]
    assert stored(conversation) is None


def test_the_event_loop_serves_others_while_redis_answers_a_lock(conversation):
    """Redis holds every command for half a second (CLIENT PAUSE): while a turn waits for its
    ticket, another task of the event loop runs; the turn then gets its lock. With a blocking
    client the other task could only run after the lock was taken."""
    s = store()
    order: list[str] = []

    async def other() -> None:
        await asyncio.sleep(0.05)
        order.append("other task ran")

    async def turn() -> None:
        async with s.lock(conversation, 60):
            order.append("lock taken")

    async def scenario() -> None:
        async with s.lock(f"{conversation}-warm", 60):  # connected, scripts known
            pass
        redis.Redis(db=DB).execute_command("CLIENT", "PAUSE", 500)
        await asyncio.gather(turn(), other())

    asyncio.run(scenario())
    assert order == ["other task ran", "lock taken"]
    assert stored(conversation) is None


def test_a_cancelled_turn_gives_its_ticket_back(conversation):
    """A turn cancelled while it holds the lock (Sanic cancels the request of a customer who
    went away) gives its ticket back before the cancellation goes on: the next turn is not held
    until the ticket expires."""
    s = store()

    async def scenario() -> None:
        inside = asyncio.Event()

        async def turn() -> None:
            async with s.lock(conversation, 60):
                inside.set()
                await asyncio.Event().wait()  # until cancelled

        task = asyncio.create_task(turn())
        await inside.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert stored(conversation) is None
        async with s.lock(conversation, 60, wait_time_in_seconds=30) as lock:
            assert [t.number for t in lock.tickets] == [lock.now_serving]

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert stored(conversation) is None


def test_a_turn_cancelled_while_redis_issues_its_ticket_gives_it_back(conversation):
    """Redis holds every command (CLIENT PAUSE) while a turn asks for its ticket, and the turn
    is cancelled meanwhile: Redis still issues the ticket when the pause ends, and the store
    gives it back as soon as it is known, so the next turn gets the lock at once instead of
    after the ticket's 60 s."""
    s = store()

    async def scenario() -> None:
        async with s.lock(f"{conversation}-warm", 60):  # connected, scripts known
            pass
        client, _, _ = s._asyncio_client()
        execute, asked = client.execute_command, asyncio.Event()

        async def watched(*args, **kwargs):
            if args[0] == "EVALSHA" and f"sportello:lock:{conversation}" in args:
                asked.set()  # the ticket is being asked for
            return await execute(*args, **kwargs)

        client.execute_command = watched

        async def turn() -> None:
            async with s.lock(conversation, 60):
                raise AssertionError("the lock was taken by a cancelled turn")

        redis.Redis(db=DB).execute_command("CLIENT", "PAUSE", 300)
        task = asyncio.create_task(turn())
        await asked.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with s.lock(conversation, 60, wait_time_in_seconds=0.01):
            pass
        while stored(conversation) is not None:  # the other ticket's release (bounded below)
            await asyncio.sleep(0.01)

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_connections_redis_closed_are_replaced_not_used(conversation):
    """Redis closes the store's idle connections (as a restart of Redis does): the next turn
    still gets its lock, on a new connection, instead of failing with "Connection closed by
    server" although Redis is up."""
    from bot.lock_store import CLIENT_NAME

    s = store()

    async def scenario() -> None:
        for _ in range(2):
            async with s.lock(conversation, 60):
                pass
            admin = redis.Redis(db=DB)
            killed = [c["id"] for c in admin.client_list() if c.get("name") == CLIENT_NAME]
            assert killed
            for client_id in killed:
                admin.execute_command("CLIENT", "KILL", "ID", client_id)
            pool = s._asyncio_client()[0].connection_pool
            # until this process has seen them closed, as after a restart of Redis (bounded
            # below)
            while not all(c._reader is None or c._reader.at_eof()
                          for c in pool._available_connections):
                await asyncio.sleep(0.01)
        async with s.lock(conversation, 60) as lock:
            assert lock.conversation_id == conversation

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert stored(conversation) is None


def test_ssl_settings_reach_the_asyncio_client_and_unsupported_ones_are_refused():
    s = AtomicRedisLockStore(host="127.0.0.1", port=6379, db=DB, use_ssl=True,
                             ssl_certfile="/certs/client.crt", ssl_keyfile="/certs/client.key",
                             ssl_ca_certs="/certs/ca.crt", password="s3cret", username="rasa")
    settings = s._asyncio_settings
    assert settings["ssl"] is True and settings["password"] == "s3cret"
    assert (settings["ssl_certfile"], settings["ssl_keyfile"], settings["ssl_ca_certs"]) == (
        "/certs/client.crt", "/certs/client.key", "/certs/ca.crt")

    async def build() -> None:  # the asyncio client accepts every setting (no connection yet)
        s._asyncio_client()

    asyncio.run(build())
    assert "ssl" not in store()._asyncio_settings
    plain = store()
    plain.red.connection_pool.connection_class = redis.SSLConnection
    plain.red.connection_pool.connection_kwargs["ssl_password"] = "key password"
    from bot.lock_store import _asyncio_settings

    with pytest.raises(ValueError, match="ssl_password"):
        _asyncio_settings(plain.red)
