"""bot/rasa_patches.py against the pinned Rasa: the same checks and errors as Rasa's own code,
without its repeated work."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import jsonschema
import pytest
import rasa
import sqlalchemy
from rasa.core.actions.action import RemoteAction
from rasa.utils.endpoints import EndpointConfig
from sqlalchemy import create_engine, text

from bot import rasa_patches

VALID = {"events": [{"event": "slot", "name": "language", "value": "it"}],
         "responses": [{"response": "utter_greet"}]}
INVALID = [
    {"events": [{"event": "slot"}]},                  # a slot event without its name
    {"events": [{"event": "no_such_event"}]},
    {"responses": "utter_greet"},                    # responses must be a list
    {"events": "not a list"},
]


@pytest.fixture(scope="module")
def action() -> RemoteAction:
    rasa_patches.apply()
    rasa_patches.apply()  # idempotent: applying twice changes nothing
    return RemoteAction("action_anything", EndpointConfig("http://127.0.0.1:1/webhook"))


def test_a_valid_result_is_accepted_without_rasa_rebuilding_the_schema(action, monkeypatch):
    def rebuilt(*_args, **_kwargs):
        raise AssertionError("jsonschema.validate called: the schema is checked again")

    monkeypatch.setattr(jsonschema, "validate", rebuilt)
    assert action._validate_action_result(VALID) is True
    assert action._validate_action_result({}) is True


@pytest.mark.parametrize("result", INVALID)
def test_an_invalid_result_fails_with_rasas_own_error_and_message(action, result):
    with pytest.raises(jsonschema.ValidationError) as raised:
        action._validate_action_result(result)
    assert "Failed to validate Action server response from API" in raised.value.message
    # the same verdict as Rasa's unpatched check
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(result, RemoteAction.action_response_format_spec())


def _events_of_every_kind() -> list:
    """One event of each kind Rasa knows, as an action server would send it."""
    from rasa.shared.core import events as ev

    made = [ev.UserUttered("ciao", {"name": "greet", "confidence": 0.9},
                           [{"entity": "month", "value": "ottobre", "start": 0, "end": 7}],
                           parse_data={"text": "ciao", "intent": {"name": "greet"},
                                       "intent_ranking": [{"name": "greet", "confidence": 0.9}],
                                       "entities": []}),
            ev.ActionExecuted("action_greet", policy="RulePolicy", confidence=1.0),
            ev.SlotSet("language", "it"), ev.SlotSet("offer", None),
            ev.EntitiesAdded([{"entity": "iban", "value": "IT60X"}]),
            ev.ReminderCancelled("r"), ev.ActionExecutionRejected("action_x"),
            ev.LoopInterrupted(True), ev.ActiveLoop("meter_reading_form"), ev.AllSlotsReset(),
            ev.ConversationResumed(), ev.ConversationPaused(), ev.FollowupAction("action_x"),
            ev.StoryExported(), ev.Restarted(), ev.ActionReverted(), ev.UserUtteranceReverted(),
            ev.BotUttered("Ciao!", {"buttons": []}), ev.SessionStarted(),
            ev.AgentUttered("hi")]
    return [e.as_dict() for e in made] + [{"event": "form", "name": "f"},
                                          {"event": "form_validation", "validate": True},
                                          {"event": "user_featurization"}]


def _broken(event: dict) -> list:
    """Ways an action server could get an event wrong."""
    out = [{k: v for k, v in event.items() if k != "event"}, {**event, "event": "slot_set"},
           {**event, "timestamp": "now"}, {**event, "metadata": []}, {**event, "event": 3}]
    for key, bad in (("name", 7), ("value", None), ("entities", [{"entity": "x"}]),
                     ("text", 5), ("policy", 1.5), ("parse_data", "x"),
                     ("hide_rule_turn", "yes")):
        if key in event:
            out.append({**event, key: bad})
    out.append({k: v for k, v in event.items() if k not in ("name", "value", "entities")})
    return out


def test_the_action_result_check_gives_jsonschemas_verdict_on_every_kind_of_event(action):
    schema = RemoteAction.action_response_format_spec()

    def rasa_says(result) -> bool:
        try:
            jsonschema.validate(result, schema)
        except jsonschema.ValidationError:
            return False
        return True

    check = rasa_patches._action_result_check()
    results = [{"events": [e]} for e in _events_of_every_kind()]
    results += [{"events": [b]} for e in _events_of_every_kind() for b in _broken(e)]
    results += [{"events": _events_of_every_kind(), "responses": [{"response": "utter_x"}]},
                {"events": None}, {"events": {}}, {"responses": [3]}, [], "x", {},
                {"events": ["slot"]}, {"events": [None]}]
    verdicts = [(check.valid(r), rasa_says(r)) for r in results]
    assert all(ours == theirs for ours, theirs in verdicts), [
        (r, v) for r, v in zip(results, verdicts) if v[0] != v[1]]
    assert sum(theirs for _, theirs in verdicts) > 20 and sum(
        not theirs for _, theirs in verdicts) > 40  # both verdicts well represented


def test_sqlite_stores_use_wal_without_a_sync_per_commit(action, tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'tracker.db'}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL


def test_the_sqlite_tracker_store_keeps_its_connections_and_its_conversations(action, tmp_path):
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker
    from sqlalchemy.pool import QueuePool

    store = SQLTrackerStore(Domain.empty(), db=str(tmp_path / "tracker.db"))
    assert isinstance(store.engine.pool, QueuePool)
    tracker = DialogueStateTracker.from_events("c1", [UserUttered("ciao")])

    async def save_twice_and_read() -> DialogueStateTracker:
        await store.save(tracker)
        tracker.update(UserUttered("ancora"))
        await store.save(tracker)
        return await store.retrieve("c1")

    read = asyncio.run(save_twice_and_read())
    assert [e.text for e in read.events if isinstance(e, UserUttered)] == ["ciao", "ancora"]
    # one connection, kept open, served every operation
    assert store.engine.pool.checkedin() == 1
    # PostgreSQL keeps Rasa's own pool settings
    from rasa.core.tracker_store import create_engine_kwargs

    assert create_engine_kwargs("postgresql://u@h/db")["pool_size"] > 0
    assert "poolclass" not in create_engine_kwargs("postgresql://u@h/db")


def test_the_sqlite_event_broker_keeps_its_connections_and_its_events(action, tmp_path):
    from rasa.core.brokers.sql import SQLEventBroker
    from sqlalchemy.pool import QueuePool

    broker = SQLEventBroker(db=str(tmp_path / "events.db"))
    assert isinstance(broker.engine.pool, QueuePool)
    for n in range(3):
        broker.publish({"sender_id": "c1", "event": "user", "text": f"messaggio {n}"})
    with broker.session_scope() as session:
        rows = session.query(broker.SQLBrokerEvent).order_by(broker.SQLBrokerEvent.id).all()
    assert [(r.sender_id, '"messaggio' in r.data) for r in rows] == [("c1", True)] * 3
    assert broker.engine.pool.checkedin() == 1  # one connection, kept open, for every event


def test_the_sql_tracker_store_streams_each_new_event_once_without_reading_the_tracker(
        action, tmp_path, monkeypatch):
    from rasa.core.brokers.broker import EventBroker
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, SessionStarted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    class Broker(EventBroker):
        def __init__(self) -> None:
            self.published: list[dict] = []

        def publish(self, event: dict) -> None:
            self.published.append(event)

    broker = Broker()
    store = SQLTrackerStore(Domain.empty(), db=str(tmp_path / "tracker.db"), event_broker=broker)
    tracker = DialogueStateTracker.from_events("c1", [UserUttered("ciao")])

    async def conversation() -> DialogueStateTracker:
        await store.save(tracker)
        monkeypatch.setattr(SQLTrackerStore, "retrieve", reading_again)
        tracker.update(ActionExecuted("utter_greet"))
        tracker.update(UserUttered("ancora"))
        await store.save(tracker)
        await store.save(tracker)  # nothing new: nothing published
        # a new session: only its events count as stored, as in Rasa's own save
        tracker.update(SessionStarted())
        tracker.update(UserUttered("di nuovo"))
        await store.save(tracker)
        monkeypatch.undo()
        return await store.retrieve_full_tracker("c1")

    async def reading_again(*_args, **_kwargs):
        raise AssertionError("the tracker was read back to find the new events")

    counts = []
    original_query = SQLTrackerStore._event_query

    def counted_query(self, *args, **kwargs):
        counts.append(1)
        return original_query(self, *args, **kwargs)

    monkeypatch.setattr(SQLTrackerStore, "_event_query", counted_query)

    stored = asyncio.run(conversation())
    assert len(counts) == 4  # one count per save (streaming and storing share it)
    assert [(e["sender_id"], e["event"], e.get("text") or e.get("name"))
            for e in broker.published] == [
        ("c1", "user", "ciao"), ("c1", "action", "utter_greet"), ("c1", "user", "ancora"),
        ("c1", "session_started", None), ("c1", "user", "di nuovo")]
    assert len(stored.events) == len(tracker.events)


def outbox_rows(store) -> int:
    from sqlalchemy import func, select

    from bot import event_outbox

    with store.engine.connect() as c:
        return c.execute(select(func.count()).select_from(event_outbox.OUTBOX)).scalar()


async def drained(name: str) -> list[dict]:
    """Every event in the test's queue `name`, decoded, in order (a turn's message, a JSON array,
    gives its events); the queue and its exchange are deleted."""

    import aio_pika

    bodies = []
    connection = await aio_pika.connect(host="127.0.0.1", login="guest", password="guest")
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, durable=True, passive=True)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            decoded = json.loads(message.body)
            bodies += decoded if isinstance(decoded, list) else [decoded]
        await channel.queue_delete(name)
        await channel.exchange_delete(name)
    return bodies


def test_a_save_returns_before_rabbitmq_confirms_and_every_event_gets_there(action, tmp_path):
    """With RabbitMQ, the SQL tracker store's save returns once the turn and its outbox row are
    stored; the publication runs after it (the customer's reply does not wait for RabbitMQ's
    confirmations) and ends with every event in the queue, in one message for the turn, and
    nothing left in the process's memory nor in the outbox."""
    import uuid

    import aio_pika
    import rasa.shared.core.events  # noqa: F401 (loaded in a Rasa server; the broker uses it)
    from rasa.core.brokers.pika import PikaEventBroker
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from bot import event_outbox

    name = f"sportello-test-patch-{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[int, int, list[dict], list[dict]]:
        broker = PikaEventBroker("127.0.0.1", "guest", "guest", queues=[name],
                                 exchange_name=name)
        await broker.connect()
        store = SQLTrackerStore(Domain.empty(), db=str(tmp_path / "t.db"), event_broker=broker)
        tracker = DialogueStateTracker.from_events("c1", [UserUttered("ciao")])
        for i in range(50):
            tracker.update(ActionExecuted("utter_greet"))
            tracker.update(UserUttered(f"ancora {i}"))
        await store.save(tracker)
        stored_before_publishing = outbox_rows(store)
        publishing = event_outbox._PUBLISHING["c1"]
        assert not publishing.done()  # the save did not wait for it
        await event_outbox.settled("c1")
        assert publishing.result() == 1  # one message: the turn
        pending = len(broker._background_tasks) + outbox_rows(store)
        connection = await aio_pika.connect(host="127.0.0.1", login="guest", password="guest")
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(name, durable=True, passive=True)
            in_queue = queue.declaration_result.message_count
        await broker.close()
        assert stored_before_publishing == 1
        expected = [{"sender_id": "c1", **e.as_dict()} for e in tracker.events]
        return pending, in_queue, await drained(name), expected

    pending, in_queue, received, expected = asyncio.run(scenario())
    assert pending == 0
    assert in_queue == 1
    assert len(received) == 101
    assert received == expected


def test_the_postgresql_tracker_store_survives_lost_connections(action):
    """The tracker store's pooled connections die (PostgreSQL restarted: here the server ends
    them): the next read and the next save go through on new connections instead of failing a
    customer's message, and the save is stored once; no connection is tested before use."""
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from bot.persistence.readers import reader
    from tests.conftest import create_pg_database, drop_pg_database

    name = create_pg_database()
    admin = create_engine("postgresql://postgres@127.0.0.1:5432/postgres",
                          isolation_level="AUTOCOMMIT")

    def end_every_connection() -> None:
        with admin.connect() as c:
            ended = c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE datname = :name"), {"name": name}).all()
        assert ended and all(row[0] for row in ended)

    try:
        store = SQLTrackerStore(Domain.empty(), dialect="postgresql", host="127.0.0.1",
                                port=5432, db=name, username="postgres")
        assert store.engine.pool._pre_ping is False
        asyncio.run(store.save(DialogueStateTracker.from_events("c1", [UserUttered("ciao")])))
        held = [store.engine.connect() for _ in range(3)]  # the pool keeps three connections
        for connection in held:
            connection.close()
        assert store.engine.pool.checkedin() == 3
        asyncio.run(store.retrieve("c1"))  # reads keep a connection of their own (readers.py)
        assert reader(store.engine).pool.checkedin() == 1
        end_every_connection()
        tracker = asyncio.run(store.retrieve("c1"))  # OperationalError on the dead connection
        assert tracker is not None and tracker.latest_message.text == "ciao"
        end_every_connection()
        tracker.update(UserUttered("grazie"))
        asyncio.run(store.save(tracker))
        assert [e.text for e in asyncio.run(store.retrieve("c1")).events
                if isinstance(e, UserUttered)] == ["ciao", "grazie"]
        store.engine.dispose()
    finally:
        admin.dispose()
        drop_pg_database(name)


def test_the_outbox_reads_and_deletes_survive_lost_connections():
    """The outbox's own database calls after PostgreSQL ended the pool's connections: tried
    once more on a new connection, not left for the sweep (which would publish them late)."""
    from sqlalchemy import select

    from bot import event_outbox
    from bot.persistence.reconnect import once_more
    from tests.conftest import create_pg_database, drop_pg_database

    name = create_pg_database()
    engine = create_engine(f"postgresql://postgres@127.0.0.1:5432/{name}", future=True)
    admin = create_engine("postgresql://postgres@127.0.0.1:5432/postgres",
                          isolation_level="AUTOCOMMIT")

    def end_every_connection() -> None:
        with admin.connect() as c:
            c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = :name"), {"name": name})

    query = select(event_outbox.OUTBOX.c.id, event_outbox.OUTBOX.c.body)
    try:
        event_outbox.ensure_table(engine)
        with engine.begin() as c:
            c.execute(event_outbox.OUTBOX.insert(), [
                {"sender_id": "c1", "body": "{}", "created": 0.0}])
        assert len(event_outbox._rows(engine, query)) == 1  # the reader keeps a connection
        end_every_connection()
        with pytest.raises(sqlalchemy.exc.OperationalError):  # without a second try
            event_outbox._rows(engine, query)
        end_every_connection()
        [(row_id, _)] = once_more(event_outbox._rows, engine, query)
        end_every_connection()
        once_more(event_outbox._remove, engine, [row_id])
        assert once_more(event_outbox._rows, engine, query) == []
    finally:
        engine.dispose()
        admin.dispose()
        drop_pg_database(name)


def test_postgresql_reads_need_no_transaction_and_saves_keep_theirs(action):
    """On PostgreSQL the tracker store's read of a conversation and the outbox's read of its
    rows are single statements run in autocommit (no BEGIN and ROLLBACK around them), and so is
    the outbox's delete of published rows (without waiting for the disk), while a save's
    statements stay in one transaction; the conversation reads back whole."""
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker
    from sqlalchemy import event, select

    from bot import event_outbox
    from bot.persistence.readers import reader, unsynced_writer
    from tests.conftest import create_pg_database, drop_pg_database

    name = create_pg_database()
    seen: list[tuple[str, bool]] = []

    def note(connection, _cursor, statement, *_args) -> None:
        seen.append((statement.split()[0].upper(),
                     connection.connection.dbapi_connection.autocommit))

    try:
        store = SQLTrackerStore(Domain.empty(), dialect="postgresql", host="127.0.0.1",
                                port=5432, db=name, username="postgres")
        for engine in (store.engine, reader(store.engine)):
            event.listen(engine, "before_cursor_execute", note)
        asyncio.run(store.save(DialogueStateTracker.from_events("c1", [UserUttered("ciao")])))
        saved, seen[:] = list(seen), []
        tracker = asyncio.run(store.retrieve("c1"))
        read, seen[:] = list(seen), []

        async def turn() -> list[tuple[str, bool]]:  # a read and a save in one task, as Rasa's
            again = await store.retrieve("c1")
            seen[:] = []
            again.update(UserUttered("grazie"))
            await store.save(again)
            return list(seen)

        saved_after_a_read = asyncio.run(turn())
        event_outbox.ensure_table(store.engine)
        seen[:] = []
        event_outbox._rows(store.engine, select(event_outbox.OUTBOX.c.id))
        outbox = list(seen)
        with store.engine.begin() as c:
            c.execute(event_outbox.OUTBOX.insert(), [
                {"sender_id": "c1", "body": "[]", "created": 0.0}])
        event.listen(unsynced_writer(store.engine), "before_cursor_execute", note)
        seen[:] = []
        event_outbox._remove(store.engine, [1])
        removed = list(seen)
        with unsynced_writer(store.engine).connect() as c:  # a crash may forget the delete
            assert c.execute(text("SHOW synchronous_commit")).scalar() == "off"
        assert event_outbox._rows(store.engine, select(event_outbox.OUTBOX.c.id)) == []
        with store.engine.connect() as c:  # the pool's connections are back to transactions
            c.execute(text("SELECT 1"))
            assert c.connection.dbapi_connection.autocommit is False
        store.engine.dispose()
    finally:
        drop_pg_database(name)
    assert tracker.latest_message.text == "ciao"
    assert read == [("SELECT", True)] and outbox == [("SELECT", True)]
    assert removed == [("DELETE", True)]  # one statement: no BEGIN, SET LOCAL or COMMIT
    for statements in (saved, saved_after_a_read):
        assert ("INSERT", False) in statements
        assert all(not autocommit for _, autocommit in statements)


def test_the_event_loop_serves_others_while_the_tracker_store_waits_for_the_database(action):
    """A read and a save of a conversation that must wait for PostgreSQL (another connection
    holds the events table) leave the Rasa server's event loop free: another task runs while
    they wait, and each finishes once the table is free. Before, the loop itself waited, so
    nothing else ran until the database answered (a watchdog frees the table after 20 s and
    the test fails if it had to). A save whose request is cancelled meanwhile still ends (and
    stores the turn) before the cancellation goes on to release the conversation's lock."""
    import threading

    import psycopg2
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from tests.conftest import create_pg_database, drop_pg_database

    name = create_pg_database()
    blocker = psycopg2.connect(host="127.0.0.1", dbname=name, user="postgres")
    freed_by_watchdog: list[str] = []
    ended_while_held: list[bool] = []

    def hold_the_table() -> threading.Timer:
        with blocker.cursor() as c:
            c.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")

        def free() -> None:
            freed_by_watchdog.append("freed")
            blocker.rollback()

        watchdog = threading.Timer(20, free)
        watchdog.start()
        return watchdog

    def waiting_for_the_lock() -> bool:
        with psycopg2.connect(host="127.0.0.1", dbname=name, user="postgres") as probe:
            with probe.cursor() as c:
                c.execute("SELECT count(*) FROM pg_locks WHERE NOT granted "
                          "AND relation = 'events'::regclass AND database = "
                          "(SELECT oid FROM pg_database WHERE datname = current_database())")
                return c.fetchone()[0] > 0

    async def while_the_table_is_held(call, cancelled: bool = False) -> object:
        watchdog = hold_the_table()
        waiting = asyncio.create_task(call())
        # this task runs only while the loop is free (or once the watchdog freed the table)
        while not waiting.done() and not waiting_for_the_lock():
            await asyncio.sleep(0.01)
        if cancelled:  # the customer went away: the save still ends before the turn does
            waiting.cancel()
            for _ in range(5):  # turns of the loop, enough to deliver a cancellation
                await asyncio.sleep(0)
            ended_while_held.append(waiting.done())
        watchdog.cancel()
        blocker.rollback()
        if cancelled:
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(waiting, 30)
            return None
        return await asyncio.wait_for(waiting, 30)

    try:
        store = SQLTrackerStore(Domain.empty(), dialect="postgresql", host="127.0.0.1",
                                port=5432, db=name, username="postgres")
        asyncio.run(store.save(DialogueStateTracker.from_events("c1", [UserUttered("ciao")])))
        read = asyncio.run(while_the_table_is_held(lambda: store.retrieve("c1")))
        first = read.latest_message.text
        read.update(UserUttered("grazie"))
        asyncio.run(while_the_table_is_held(lambda: store.save(read)))
        again = asyncio.run(store.retrieve("c1"))
        again.update(UserUttered("ci sei?"))
        asyncio.run(while_the_table_is_held(lambda: store.save(again), cancelled=True))
        after_cancel = asyncio.run(store.retrieve("c1"))
        store.engine.dispose()
    finally:
        blocker.close()
        drop_pg_database(name)
    assert freed_by_watchdog == []
    assert first == "ciao"
    assert [e.text for e in again.events if isinstance(e, UserUttered)][:2] == ["ciao", "grazie"]
    # a cancelled save is not over until its write is: then the conversation holds it
    assert ended_while_held == [False]
    assert [e.text for e in after_cancel.events if isinstance(e, UserUttered)] == [
        "ciao", "grazie", "ci sei?"]


def test_a_tracker_store_error_is_raised_not_answered_from_an_empty_conversation(action):
    """Rasa's FailSafeTrackerStore would answer from a new empty tracker (and keep the turn in
    memory): the error reaches the channel, which answers the technical-problem reply."""
    from rasa.core.tracker_store import FailSafeTrackerStore, InMemoryTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.trackers import DialogueStateTracker

    class Away(InMemoryTrackerStore):
        async def retrieve(self, sender_id):
            raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("connection refused"))

        async def retrieve_full_tracker(self, sender_id):
            return await self.retrieve(sender_id)

        async def save(self, tracker):
            raise sqlalchemy.exc.OperationalError("INSERT", {}, Exception("connection refused"))

    store = FailSafeTrackerStore(Away(Domain.empty()))
    for call in (store.retrieve("c1"), store.retrieve_full_tracker("c1"),
                 store.save(DialogueStateTracker("c1", []))):
        with pytest.raises(sqlalchemy.exc.OperationalError):
            asyncio.run(call)
    assert store._fallback_tracker_store is None  # nothing kept in this process's memory


@pytest.mark.parametrize("with_broker", [True, False])
def test_a_turn_saves_without_counting_what_retrieve_read(action, tmp_path, monkeypatch,
                                                          with_broker):
    """read, update, save (a turn): the events `retrieve` read are the stored ones, so the save
    needs no count; a second save of the same tracker counts again; nothing lost or doubled."""
    from rasa.core.brokers.sql import SQLEventBroker
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    broker = SQLEventBroker(db=str(tmp_path / "events.db")) if with_broker else None
    store = SQLTrackerStore(Domain.empty(), db=str(tmp_path / "tracker.db"), event_broker=broker)
    counts = []
    original_query = SQLTrackerStore._event_query

    def counted_query(self, session, sender_id, fetch_events_from_all_sessions):
        if not fetch_events_from_all_sessions and sender_id == "c1":
            counts.append(1)
        return original_query(self, session, sender_id, fetch_events_from_all_sessions)

    monkeypatch.setattr(SQLTrackerStore, "_event_query", counted_query)

    async def turns() -> tuple:
        await store.save(DialogueStateTracker.from_events("c1", [UserUttered("ciao")]))
        tracker = await store.retrieve("c1")
        counts.clear()
        tracker.update(ActionExecuted("utter_greet"))
        tracker.update(UserUttered("quanto devo pagare?"))
        await store.save(tracker)
        first = len(counts)
        tracker.update(ActionExecuted("action_check_bill"))
        await store.save(tracker)
        return first, len(counts), await store.retrieve_full_tracker("c1")

    first, second, stored = asyncio.run(turns())
    assert (first, second) == (0, 1)
    assert [e.as_dict()["event"] for e in stored.events] == ["user", "action", "user", "action"]
    if broker is not None:
        with broker.session_scope() as session:
            assert session.query(broker.SQLBrokerEvent).count() == 4


def test_the_sql_event_broker_gets_a_saves_events_in_one_transaction_as_rasa_writes_them(
        action, tmp_path):
    from rasa.core.brokers.sql import SQLEventBroker
    from rasa.core.tracker_store import SQLTrackerStore, TrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, SlotSet, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    broker = SQLEventBroker(db=str(tmp_path / "events.db"))
    reference = SQLEventBroker(db=str(tmp_path / "reference.db"))
    store = SQLTrackerStore(Domain.empty(), db=str(tmp_path / "tracker.db"), event_broker=broker)
    tracker = DialogueStateTracker.from_events("c1", [UserUttered("ciao", timestamp=1.0)])
    commits = []
    sqlalchemy.event.listen(broker.engine, "commit", lambda _conn: commits.append(1))

    async def two_turns() -> None:
        await store.save(tracker)
        for event in (ActionExecuted("utter_greet", timestamp=2.0),
                      SlotSet("language", "it", timestamp=2.5),
                      UserUttered("quanto devo pagare?", timestamp=3.0)):
            tracker.update(event)
        await store.save(tracker)
        # what Rasa's own streaming writes, one publish per event
        await TrackerStore._stream_new_events(None, reference, tracker.events, "c1")

    asyncio.run(two_turns())
    assert len(commits) == 2  # one per save, not one per event

    def rows(b):
        with b.session_scope() as session:
            return [(r.sender_id, r.data) for r in session.query(b.SQLBrokerEvent)
                    .order_by(b.SQLBrokerEvent.id)]

    assert rows(broker) == rows(reference) and len(rows(broker)) == 4


def test_events_find_the_same_class_as_rasas_walk_and_a_class_defined_later(action):
    from rasa.shared.core.events import ActionExecuted, Event, SlotSet, UserUttered
    from rasa.shared.utils.common import all_subclasses

    for cls in all_subclasses(Event):
        first = next(c for c in all_subclasses(Event) if c.type_name == cls.type_name)
        assert Event.resolve_by_type(cls.type_name) is first
    assert Event.resolve_by_type("user") is UserUttered
    assert Event.resolve_by_type("slot") is SlotSet
    assert Event.resolve_by_type("topic") is None  # Rasa's backwards compatibility
    assert Event.resolve_by_type("no_such_event", ActionExecuted) is ActionExecuted
    with pytest.raises(ValueError, match="Unknown event name 'no_such_event'"):
        Event.resolve_by_type("no_such_event")

    class LaterEvent(SlotSet):  # a concrete event (Rasa skips abstract classes)
        type_name = "sportello_test_later"

    assert Event.resolve_by_type("sportello_test_later") is LaterEvent
    assert Event.resolve_by_type("user") is UserUttered


def test_calls_to_an_endpoint_reuse_one_connection(action):
    """Three calls as Rasa makes them to the action server: one TCP connection, the headers and
    token of the endpoint on each, the answers as before."""
    from aiohttp import web

    peers, seen = [], []

    async def webhook(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername"))
        seen.append((request.headers.get("Authorization"), request.query.get("token")))
        return web.json_response({"events": [], "responses": [await request.json()]})

    async def calls() -> list:
        app = web.Application()
        app.router.add_post("/webhook", webhook)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        endpoint = EndpointConfig(f"http://127.0.0.1:{port}/webhook", token="t0k",
                                  headers={"Authorization": "Bearer s3cret"})
        try:
            return [await endpoint.request(json={"n": n}, method="post") for n in range(3)]
        finally:
            await runner.cleanup()

    answers = asyncio.run(calls())
    assert [a["responses"] for a in answers] == [[{"n": 0}], [{"n": 1}], [{"n": 2}]]
    assert len(set(peers)) == 1 and len(peers) == 3
    assert seen == [("Bearer s3cret", "t0k")] * 3


CUSTOMER_TURNS = ["ciao", "quanto devo pagare?", "vorrei comunicare la lettura del contatore",
                  "anzi no, annulla", "c'è un guasto in via Roma?",
                  "voglio parlare con un operatore", "asdfgh qwerty", "grazie, ciao"]


def test_graphs_run_without_dask_give_what_dask_gives(action, model_path, tmp_path):
    """The trained model's two graphs, run by Rasa's DaskGraphRunner and by the runner the
    processor now loads, on the same turns: the same parse (intent, ranking, entities) and the
    same policy prediction at every step of a conversation."""
    from rasa.core import processor
    from rasa.core.channels.channel import UserMessage
    from rasa.engine import loader
    from rasa.engine.exceptions import GraphRunError
    from rasa.engine.runner.dask import DaskGraphRunner
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    ours_class = processor.DaskGraphRunner
    assert ours_class is not DaskGraphRunner and issubclass(ours_class, DaskGraphRunner)
    (tmp_path / "dask").mkdir()
    (tmp_path / "ours").mkdir()
    metadata, dask_runner = loader.load_predict_graph_runner(
        tmp_path / "dask", model_path, LocalModelStorage, DaskGraphRunner)
    _, ours = loader.load_predict_graph_runner(
        tmp_path / "ours", model_path, LocalModelStorage, ours_class)
    nlu, core = metadata.nlu_target, metadata.core_target
    tracker = DialogueStateTracker("graph-test", metadata.domain.slots)
    tracker.update(ActionExecuted("action_listen"))
    for said in CUSTOMER_TURNS:
        inputs = {"__message__": [UserMessage(said)], "__tracker__": tracker}
        parsed = [ours.run(inputs=inputs, targets=[nlu]), dask_runner.run(inputs=inputs,
                                                                           targets=[nlu])]
        ours_message, dask_message = (result[nlu][0] for result in parsed)
        for key in ("text", "intent", "intent_ranking", "entities"):
            assert ours_message.get(key) == dask_message.get(key), (said, key)
        assert ours_message.get("intent")["name"]
        tracker.update(UserUttered(said, ours_message.get("intent"),
                                   ours_message.get("entities")))
        ours_prediction = ours.run(inputs={"__tracker__": tracker}, targets=[core])[core]
        dask_prediction = dask_runner.run(inputs={"__tracker__": tracker},
                                          targets=[core])[core]
        assert ours_prediction.probabilities == dask_prediction.probabilities, said
        assert ours_prediction.policy_name == dask_prediction.policy_name, said
        assert ours_prediction.events == dask_prediction.events, said
        assert ours_prediction.optional_events == dask_prediction.optional_events, said
        best = max(range(len(ours_prediction.probabilities)),
                   key=ours_prediction.probabilities.__getitem__)
        tracker.update(ActionExecuted(metadata.domain.action_names_or_texts[best]))
        tracker.update(ActionExecuted("action_listen"))
    # the whole graph when no target is named, and Rasa's error for an input named like a node
    assert set(ours.run(inputs={"__message__": [UserMessage("ciao")], "__tracker__": tracker})) \
        == set(dask_runner.run(inputs={"__message__": [UserMessage("ciao")],
                                       "__tracker__": tracker}))
    for runner in (ours, dask_runner):
        with pytest.raises(GraphRunError, match="clashes with a node name"):
            runner.run(inputs={"__tracker__": core}, targets=[core])


def test_another_rasa_version_is_refused(monkeypatch):
    monkeypatch.setattr(rasa, "__version__", "3.7.0")
    with pytest.raises(RuntimeError, match="written for Rasa 3.6.21"):
        rasa_patches.apply()


def test_events_a_dead_process_stored_reach_rabbitmq_once_and_in_order(action, tmp_path,
                                                                        monkeypatch):
    """The outbox (bot/event_outbox.py): a Rasa server stores a turn and dies before RabbitMQ
    has its events (here: its broker never connected, so nothing leaves its memory). The turn's
    events are in the outbox, stored with the turn; the next turn of that conversation, on
    another Rasa server, publishes them first, then its own; another conversation's leftovers
    are published by the other server's sweep. Nothing stays in the outbox, nothing is lost."""
    import uuid

    import rasa.shared.core.events  # noqa: F401 (loaded in a Rasa server; the broker uses it)
    from rasa.core.brokers.pika import PikaEventBroker
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from sqlalchemy import func, select

    from bot import event_outbox

    name = f"sportello-test-outbox-{uuid.uuid4().hex[:8]}"
    db = str(tmp_path / "tracker.db")

    def outbox_rows() -> int:
        engine = create_engine(f"sqlite:///{db}")
        with engine.connect() as c:
            n = c.execute(select(func.count()).select_from(event_outbox.OUTBOX)).scalar()
        engine.dispose()
        return n

    async def scenario() -> tuple[int, list[tuple[str, str]], int]:
        dead_broker = PikaEventBroker("127.0.0.1", "guest", "guest", queues=[name],
                                      exchange_name=name)  # never connected: "dies" unsent
        dying = SQLTrackerStore(Domain.empty(), db=db, event_broker=dead_broker)
        for sender in ("a", "b"):
            tracker = await dying.get_or_create_tracker(sender, append_action_listen=False)
            tracker.update(UserUttered(f"{sender} 1"))
            await dying.save(tracker)
        dying._sportello_sweeper.cancel()
        left = outbox_rows()

        broker = PikaEventBroker("127.0.0.1", "guest", "guest", queues=[name],
                                 exchange_name=name)
        await broker.connect()
        other = SQLTrackerStore(Domain.empty(), db=db, event_broker=broker)
        tracker = await other.retrieve("a")
        tracker.update(ActionExecuted("utter_greet"))
        tracker.update(UserUttered("a 2"))
        await other.save(tracker)  # conversation a: its leftover first, then its new turn
        await event_outbox.settled("a")
        monkeypatch.setattr(event_outbox, "ORPHAN_SECONDS", 0.0)
        await event_outbox.sweep(other.engine, broker)  # conversation b: swept
        other._sportello_sweeper.cancel()

        received = [(body["sender_id"], body.get("text") or body.get("name"))
                    for body in await drained(name)]
        await broker.close()
        return left, received, outbox_rows()

    left, received, after = asyncio.run(scenario())
    assert left == 2
    assert received == [("a", "a 1"), ("a", "utter_greet"), ("a", "a 2"), ("b", "b 1")]
    assert after == 0


def test_the_outbox_sends_the_bytes_rasa_would_and_a_message_nobody_took_stays(action, tmp_path):
    """Each event of a turn's message, written back as the relay writes its row, is the message
    Rasa's own publication of that event would send (the relay stores it as the SQL broker
    would). A message RabbitMQ could route to no queue comes back (Basic.Return, not an error):
    it stays in the outbox."""
    import uuid

    import rasa.shared.core.events  # noqa: F401 (loaded in a Rasa server; the broker uses it)
    from rasa.core.brokers.pika import PikaEventBroker
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import UserUttered

    from bot import event_outbox

    event = UserUttered("è già la terza volta €", intent={"name": "greet", "confidence": 0.9})
    rasa_body = {"sender_id": "c1"}
    rasa_body.update(event.as_dict())  # as Rasa's _stream_new_events builds it

    name = f"sportello-test-unrouted-{uuid.uuid4().hex[:8]}"

    async def scenario() -> int:
        lonely = PikaEventBroker("127.0.0.1", "guest", "guest", queues=[name],
                                 exchange_name=name)
        assert event_outbox.body("c1", event.as_dict()).encode() == \
            lonely._message(rasa_body, None).body
        [item] = json.loads(event_outbox.turn_body("c1", [event.as_dict()]))
        assert json.dumps(item).encode() == lonely._message(rasa_body, None).body
        await lonely.connect()
        channel = await lonely._connection.channel()
        await channel.queue_delete(name)  # the exchange is bound to no queue any more
        store = SQLTrackerStore(Domain.empty(), db=str(tmp_path / "t.db"), event_broker=lonely)
        tracker = await store.get_or_create_tracker("c1", append_action_listen=False)
        tracker.update(UserUttered("ciao"))
        await store.save(tracker)
        await event_outbox.settled("c1")
        left = outbox_rows(store)
        store._sportello_sweeper.cancel()
        await channel.exchange_delete(name)
        await lonely.close()
        return left

    assert asyncio.run(scenario()) == 1


def test_turns_saved_back_to_back_reach_rabbitmq_once_each_in_turn_order(action, tmp_path):
    """A conversation's publications run one at a time in a process (each after the one
    before), so turns saved faster than RabbitMQ confirms arrive in order, none twice."""
    import uuid

    import rasa.shared.core.events  # noqa: F401 (loaded in a Rasa server; the broker uses it)
    from rasa.core.brokers.pika import PikaEventBroker
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import UserUttered

    from bot import event_outbox

    name = f"sportello-test-order-{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[list[str], int]:
        broker = PikaEventBroker("127.0.0.1", "guest", "guest", queues=[name],
                                 exchange_name=name)
        await broker.connect()
        store = SQLTrackerStore(Domain.empty(), db=str(tmp_path / "t.db"), event_broker=broker)
        tracker = await store.get_or_create_tracker("c1", append_action_listen=False)
        for i in range(20):
            tracker.update(UserUttered(f"turn {i}"))
            await store.save(tracker)  # the next save starts before this one is published
        await event_outbox.settled("c1")
        store._sportello_sweeper.cancel()
        received = [body.get("text") for body in await drained(name)]
        await broker.close()
        return received, outbox_rows(store)

    received, left = asyncio.run(scenario())
    assert [text for text in received if text] == [f"turn {i}" for i in range(20)]
    assert left == 0


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_a_save_stores_the_columns_rasa_stores(action, tmp_path, dialect):
    """The SQL tracker store's save writes its rows with one INSERT (not an ORM object per
    event): each event's row has the type, timestamp, intent, action and data Rasa's own `save`
    gives it, in the events' order, over two turns; the conversation reads back the same."""
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import (
        ActionExecuted,
        BotUttered,
        SessionStarted,
        SlotSet,
        UserUttered,
    )
    from rasa.shared.core.trackers import DialogueStateTracker

    from tests.conftest import create_pg_database, drop_pg_database

    domain = Domain.from_dict({"slots": {"language": {
        "type": "text", "mappings": [{"type": "custom"}]}}})
    first = [ActionExecuted("action_session_start"), SessionStarted(),
             ActionExecuted("action_listen"),
             UserUttered("ciao", intent={"name": "greet", "confidence": 0.9})]
    second = [SlotSet("language", "it"), BotUttered("Ciao! Come posso aiutarti?"),
              ActionExecuted("utter_greet"), ActionExecuted("action_listen"),
              UserUttered("quanto devo pagare?", intent={"name": "check_bill", "confidence": 0.8})]
    name = create_pg_database() if dialect == "postgresql" else None
    try:
        store = (SQLTrackerStore(domain, dialect="postgresql", host="127.0.0.1",
                                 port=5432, db=name, username="postgres")
                 if name else SQLTrackerStore(domain, db=str(tmp_path / "t.db")))
        asyncio.run(store.save(DialogueStateTracker.from_events("c1", first, domain.slots)))
        tracker = asyncio.run(store.retrieve("c1"))
        for event in second:
            tracker.update(event)
        asyncio.run(store.save(tracker))
        with store.engine.connect() as c:
            rows = c.execute(text("SELECT sender_id, type_name, timestamp, intent_name, "
                                  "action_name, data FROM events ORDER BY id")).all()
        stored = asyncio.run(store.retrieve("c1"))
        store.engine.dispose()
    finally:
        if name:
            drop_pg_database(name)
    assert [(r.sender_id, r.type_name, r.intent_name, r.action_name) for r in rows] == [
        ("c1", "action", None, "action_session_start"), ("c1", "session_started", None, None),
        ("c1", "action", None, "action_listen"), ("c1", "user", "greet", None),
        ("c1", "slot", None, "language"), ("c1", "bot", None, None),
        ("c1", "action", None, "utter_greet"), ("c1", "action", None, "action_listen"),
        ("c1", "user", "check_bill", None)]
    assert [json.loads(r.data) for r in rows] == [e.as_dict() for e in first + second]
    assert [r.timestamp for r in rows] == [e.timestamp for e in first + second]
    assert list(stored.events) == list(tracker.events) == first[1:] + second


@pytest.mark.parametrize("landed", [True, False], ids=["commit-landed", "commit-lost"])
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_a_save_tried_again_after_a_lost_connection_stores_the_turn_once(action, tmp_path,
                                                                           monkeypatch, dialect,
                                                                           landed):
    """The connection is lost at the commit of a turn that starts a new session, after the
    commit reached the database or before: the save is tried again (a lost connection) and
    the turn is stored exactly once, in order (counting the latest session again would have
    written the old session's events a second time)."""
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.orm import Session

    from tests.conftest import create_pg_database, drop_pg_database

    old = [ActionExecuted("action_session_start"), SessionStarted(),
           ActionExecuted("action_listen"), UserUttered("ciao"), BotUttered("Ciao!"),
           ActionExecuted("action_listen")]
    new = [ActionExecuted("action_session_start"), SessionStarted(),
           ActionExecuted("action_listen"), UserUttered("sono tornato"), BotUttered("Bentornato!")]
    name = create_pg_database() if dialect == "postgresql" else None
    try:
        store = (SQLTrackerStore(Domain.empty(), dialect="postgresql", host="127.0.0.1",
                                 port=5432, db=name, username="postgres")
                 if name else SQLTrackerStore(Domain.empty(), db=str(tmp_path / "t.db")))
        asyncio.run(store.save(DialogueStateTracker.from_events("c1", old)))
        tracker = asyncio.run(store.retrieve("c1"))
        for event in new:
            tracker.update(event)
        real_commit, failures = Session.commit, []

        def commit_then_lose(session: Session) -> None:
            if not failures:
                failures.append(1)
                if landed:
                    real_commit(session)
                raise DBAPIError("COMMIT", {}, Exception("server closed the connection"),
                                 connection_invalidated=True)
            real_commit(session)

        monkeypatch.setattr(Session, "commit", commit_then_lose)
        asyncio.run(store.save(tracker))
        monkeypatch.setattr(Session, "commit", real_commit)
        with store.engine.connect() as c:
            rows = c.execute(text("SELECT type_name, data FROM events ORDER BY id")).all()
        store.engine.dispose()
    finally:
        if name:
            drop_pg_database(name)
    assert failures == [1]
    assert [json.loads(data) for _, data in rows] == [e.as_dict() for e in old + new]


def _conversation_events() -> list:
    """Events of a conversation that goes through every way a tracker's history moves: hidden
    rule turns, a form with its loop, a follow-up action, the featurization of a message chosen
    afterwards, reverted and restarted turns, a new session."""
    from rasa.shared.core import events as ev

    def said(text: str, intent: str, entities: list | None = None) -> ev.UserUttered:
        return ev.UserUttered(text, {"name": intent, "confidence": 0.9}, entities or [])

    return [
        ev.ActionExecuted("action_session_start"), ev.SessionStarted(),
        ev.SlotSet("language", "it"), ev.ActionExecuted("action_listen"),
        said("ciao", "greet"), ev.DefinePrevUserUtteredFeaturization(False),
        ev.ActionExecuted("utter_greet", hide_rule_turn=True), ev.BotUttered("Ciao!"),
        ev.ActionExecuted("action_listen", hide_rule_turn=True),
        said("leggo il contatore 1234", "submit_meter_reading",
             [{"entity": "reading_value", "value": "1234", "start": 20, "end": 24}]),
        ev.DefinePrevUserUtteredFeaturization(True),
        ev.ActionExecuted("meter_reading_form"), ev.ActiveLoop("meter_reading_form"),
        ev.SlotSet("verified", True), ev.SlotSet("requested_slot", "reading_value"),
        ev.ActionExecuted("action_listen"),
        said("anzi no, annulla", "cancel"), ev.DefinePrevUserUtteredFeaturization(False),
        ev.ActionExecuted("action_cancel_form", hide_rule_turn=True),
        ev.ActiveLoop(None), ev.SlotSet("requested_slot", None),
        ev.FollowupAction("utter_anything_else"),
        ev.ActionExecuted("utter_anything_else"), ev.SlotSet("offer", "pay_bill"),
        ev.ActionExecuted("action_listen"), said("boh", "nlu_fallback"),
        ev.UserUtteranceReverted(), ev.ActionExecuted("action_listen"),
        said("quanto devo pagare?", "check_bill"),
        ev.ActionExecuted("action_check_bill"), ev.ActionReverted(),
        ev.ActionExecuted("action_explain_bill"), ev.ActionExecuted("action_listen"),
        ev.Restarted(), ev.ActionExecuted("action_session_start"), ev.SessionStarted(),
        ev.ActionExecuted("action_listen"), said("grazie", "thank"),
        ev.ActionExecuted("utter_welcome"), ev.ActionExecuted("action_listen"),
    ]


def test_past_states_are_the_states_rasa_replays_at_every_event():
    """The policies' featurization (`Domain.states_for_tracker_history`) on the kept points gives
    what Rasa's replay gives, after every event of a conversation that goes through every way a
    history moves, with and without the rule-only turns; and a caller who changes the states it
    was given changes nothing for the next call."""
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.trackers import DialogueStateTracker

    rasa_patches.apply()
    patched = Domain.states_for_tracker_history
    original = patched.__wrapped__
    assert original is not patched
    domain = Domain.load("domain")
    rule_only = {"rule_only_slots": ["requested_slot"],
                 "rule_only_loops": ["meter_reading_form", "verify_form"]}
    tracker = DialogueStateTracker("states-test", domain.slots)
    calls = [dict(ignore_rule_only_turns=ignore, rule_only_data=data)
             for ignore in (False, True) for data in (None, rule_only)]
    for event in _conversation_events():
        tracker.update(event)
        for kwargs in calls:
            expected = original(domain, tracker, **kwargs)
            given = patched(domain, tracker, **kwargs)
            assert given == expected, (event, kwargs)
            for state in given:  # as the featurizer does to the last user input, and more
                for sub_state in state.values():
                    sub_state.clear()
                state.clear()
            assert patched(domain, tracker, **kwargs) == expected, (event, kwargs)
    assert "_sportello_prior_states" in tracker.__dict__
    # a message's featurization changed on the message itself, as a later
    # DefinePrevUserUtteredFeaturization does: Rasa's replay reads the message as it is now
    from rasa.shared.core.events import UserUttered

    message = next(e for e in tracker.events if isinstance(e, UserUttered) and e.text == "grazie")
    for flag in (False, None, True):
        message.use_text_for_featurization = flag
        assert patched(domain, tracker) == original(domain, tracker), flag
    # a copy of the tracker (new events, the same history) and another domain: the same states
    copy = DialogueStateTracker.from_dict("states-test", [e.as_dict() for e in tracker.events],
                                          domain.slots)
    assert patched(domain, copy) == original(domain, copy)
    other = Domain.load("domain")
    assert patched(other, tracker) == original(other, tracker)
    assert patched(domain, tracker, omit_unset_slots=True) == original(
        domain, tracker, omit_unset_slots=True)


def test_predictions_are_the_same_with_the_kept_past_states(model_path, tmp_path, monkeypatch):
    """The trained model's policies, on an eight-turn conversation: the same prediction at every
    step with Rasa's replay and with the kept points (the tracker predicted on again and again,
    as in a turn)."""
    from rasa.core import processor
    from rasa.core.channels.channel import UserMessage
    from rasa.engine import loader
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    rasa_patches.apply()
    patched = Domain.states_for_tracker_history
    metadata, runner = loader.load_predict_graph_runner(
        tmp_path, model_path, LocalModelStorage, processor.DaskGraphRunner)
    nlu, core = metadata.nlu_target, metadata.core_target
    tracker = DialogueStateTracker("prediction-test", metadata.domain.slots)
    tracker.update(ActionExecuted("action_listen"))

    def predict(replay: bool):
        monkeypatch.setattr(Domain, "states_for_tracker_history",
                            patched.__wrapped__ if replay else patched)
        return runner.run(inputs={"__tracker__": tracker}, targets=[core])[core]

    for said in CUSTOMER_TURNS:
        message = runner.run(inputs={"__message__": [UserMessage(said)], "__tracker__": tracker},
                             targets=[nlu])[nlu][0]
        tracker.update(UserUttered(said, message.get("intent"), message.get("entities")))
        for _ in range(4):  # a turn's predictions, until the assistant listens again
            kept, replayed = predict(replay=False), predict(replay=True)
            assert kept.probabilities == replayed.probabilities, said
            assert kept.policy_name == replayed.policy_name, said
            assert kept.events == replayed.events, said
            assert kept.optional_events == replayed.optional_events, said
            tracker.update_with_events(kept.events, metadata.domain)
            best = metadata.domain.action_names_or_texts[
                max(range(len(kept.probabilities)), key=kept.probabilities.__getitem__)]
            tracker.update(ActionExecuted(best, kept.policy_name, max(kept.probabilities),
                                          hide_rule_turn=kept.hide_rule_turn))
            if best == "action_listen":
                break
        else:
            tracker.update(ActionExecuted("action_listen"))
    assert "_sportello_prior_states" in tracker.__dict__


def test_rules_found_by_their_last_state_are_the_rules_rasa_finds(model_path, tmp_path):
    """The trained RulePolicy's rules found for a conversation's states, by Rasa's test of every
    rule and by the groups: the same, for every rule's own states (and each of their tails), the
    states of a conversation that goes through a form, reverted and restarted turns, and states
    no rule was written for."""
    import json

    from rasa.core import processor
    from rasa.core.policies.rule_policy import RulePolicy
    from rasa.engine import loader
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.trackers import DialogueStateTracker

    rasa_patches.apply()
    _, runner = loader.load_predict_graph_runner(tmp_path, model_path, LocalModelStorage,
                                                 processor.DaskGraphRunner)
    policy = next(node._component for node in runner._instantiated_nodes.values()
                  if isinstance(getattr(node, "_component", None), RulePolicy))
    patched = RulePolicy._get_possible_keys
    original = patched.__wrapped__
    lookups = [policy.lookup["rules"], policy.lookup["rules_for_loop_unhappy_path"]]
    assert len(lookups[0]) > 100 and lookups[1]
    cases = [[]]
    for lookup in lookups:
        for key in lookup:
            states = json.loads(key)
            cases.extend(states[i:] for i in range(len(states)))
    domain = Domain.load("domain")
    tracker = DialogueStateTracker("rules-test", domain.slots)
    for event in _conversation_events():
        tracker.update(event)
        for use_text in (True, False):
            cases.append(policy._prediction_states(tracker, domain, use_text,
                                                   rule_only_data=policy._get_rule_only_data()))
    cases.append([{"prev_action": {"action_name": "no_such_action"},
                   "user": {"intent": "no_such_intent"}}])
    found = 0
    for states in cases:
        for lookup in lookups:
            expected = original(policy, lookup, states)
            assert patched(policy, lookup, states) == expected, states
            found += len(expected)
    assert found > len(cases)  # rules were found, not only empty sets compared


def test_memoized_keys_are_the_keys_rasa_compresses():
    """The MemoizationPolicy's lookup keys for a conversation's states: the same as Rasa's,
    the first time and when kept; the kept keys stay bounded; without compression, Rasa's."""
    from rasa.core.policies.memoization import MemoizationPolicy
    from rasa.engine.graph import ExecutionContext
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.trackers import DialogueStateTracker

    rasa_patches.apply()
    patched = MemoizationPolicy._create_feature_key
    original = patched.__wrapped__

    def policy(**config) -> MemoizationPolicy:
        return MemoizationPolicy({**MemoizationPolicy.get_default_config(), **config},
                                 LocalModelStorage(Path("/nonexistent")), Resource("memo"),
                                 ExecutionContext(None))

    memo, plain = policy(), policy(enable_feature_string_compression=False)
    domain = Domain.load("domain")
    tracker = DialogueStateTracker("memo-test", domain.slots)
    keys = set()
    for event in _conversation_events():
        tracker.update(event)
        states = memo._prediction_states(tracker, domain)
        for _ in range(2):  # computed, then kept
            assert patched(memo, states) == original(memo, states)
            keys.add(patched(memo, states))
        assert patched(plain, states) == original(plain, states) and "{" in patched(plain,
                                                                                    states)
    assert len(keys) > 5 and patched(memo, []) is None
    for i in range(rasa_patches.MEMOIZED_KEYS_KEPT + 10):
        patched(memo, [{"user": {"intent": f"intent_{i}"}}])
    assert len(memo.__dict__["_sportello_keys"]) <= rasa_patches.MEMOIZED_KEYS_KEPT


def test_a_response_is_chosen_among_its_variations_as_rasa_chooses():
    """Every response of the domain, in both languages, on the REST channel and on another: the
    variation Rasa's filter leaves when it leaves one, one of those it leaves otherwise, None
    for a response the domain does not have."""
    from rasa.core.nlg.generator import ResponseVariationFilter
    from rasa.core.nlg.response import TemplatedNaturalLanguageGenerator
    from rasa.shared.core.domain import Domain

    rasa_patches.apply()
    patched = TemplatedNaturalLanguageGenerator._random_response_for
    original = patched.__wrapped__
    domain = Domain.load("domain")
    responses = {**domain.responses, "utter_two": [{"text": "uno"}, {"text": "due"}]}
    nlg = TemplatedNaturalLanguageGenerator(responses)
    single = several = 0
    for name in responses:
        for slots in ({"language": "it"}, {"language": "en"}, {}):
            for channel in ("rest", "whatsapp"):
                suitable = ResponseVariationFilter(responses).responses_for_utter_action(
                    name, channel, slots)
                chosen = patched(nlg, name, channel, slots)
                if len(suitable) == 1:
                    single += 1
                    assert chosen == original(nlg, name, channel, slots) == suitable[0]
                elif suitable:
                    several += 1
                    assert chosen in suitable
                else:
                    assert chosen is None is original(nlg, name, channel, slots)
    assert single > 100 and several
    assert {patched(nlg, "utter_two", "rest", {})["text"] for _ in range(200)} == {"uno", "due"}
    assert patched(nlg, "utter_no_such_response", "rest", {}) is None
