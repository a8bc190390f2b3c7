"""The few places where Sportello changes how Rasa itself runs, all in the Rasa server process.

Each patch keeps Rasa's observable behaviour and only removes repeated work that a profile of a
turn showed (bench/profile.py): they are written against the pinned Rasa version, checked when
applied, and tested in tests/test_rasa_patches.py. `apply()` is called by bot/rasa_server.py,
the entry point that starts Rasa's own command line.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

logger = logging.getLogger(__name__)

RASA_VERSION = "3.6.21"  # the version these patches were written and tested against
_APPLIED: set[str] = set()


def apply() -> None:
    """Apply every patch once; refuse a Rasa version the patches were not written for."""
    import rasa

    if rasa.__version__ != RASA_VERSION:
        raise RuntimeError(f"bot/rasa_patches.py is written for Rasa {RASA_VERSION}, "
                           f"found {rasa.__version__}: review the patches before upgrading")
    for patch in (validate_action_results_with_one_validator, sqlite_commits_without_fsync,
                  sqlite_stores_keep_their_connections, sql_tracker_store_streams_without_reading,
                  sql_tracker_store_reads_only_the_events, sql_tracker_store_reads_in_a_thread,
                  sql_tracker_store_reads_outside_a_transaction, events_find_their_class_once,
                  endpoints_keep_their_connections, stores_reconnect_after_an_outage,
                  tracker_store_errors_are_not_hidden, pika_broker_keeps_what_was_cut_short,
                  graphs_run_without_dask, past_states_replay_each_event_once,
                  rules_are_found_by_their_last_state, memoized_keys_are_compressed_once,
                  a_single_response_variation_is_taken_as_it_is):
        if patch.__name__ not in _APPLIED:
            patch()
            _APPLIED.add(patch.__name__)


class ActionResultCheck:
    """Rasa's action-response schema, checked in the same way with less work. Its event schema
    is a `oneOf` over one branch per event type, each fixing `event` to its own constant, so an
    event can only match the branch of its own type: checking that branch alone (with the
    properties every event shares) gives `oneOf`'s verdict without trying the other twenty-two.
    The rest of the response (an object, `responses` a list of objects, `events` a list) is
    checked by the schema itself with the events left out."""

    def __init__(self) -> None:
        from jsonschema.validators import validator_for
        from rasa.core.actions.action import RemoteAction
        from rasa.shared.utils.schemas.events import EVENT_SCHEMA

        schema = RemoteAction.action_response_format_spec()
        if schema["properties"]["events"] != {"type": "array", "items": EVENT_SCHEMA}:
            raise RuntimeError("Rasa's action response schema changed: review rasa_patches")
        shared = {k: v for k, v in EVENT_SCHEMA.items() if k != "oneOf"}
        self.by_type: dict[str, Any] = {}
        for branch in EVENT_SCHEMA["oneOf"]:
            name = branch["properties"]["event"]["const"]
            if name in self.by_type:
                raise RuntimeError(f"two event schemas for {name!r}: review rasa_patches")
            one = {"allOf": [shared, branch]}
            validator_for(one).check_schema(one)
            self.by_type[name] = validator_for(one)(one)
        outer = {**schema, "properties": {**schema["properties"], "events": {"type": "array"}}}
        validator_for(outer).check_schema(outer)
        self.outer = validator_for(outer)(outer)

    def valid(self, result: Any) -> bool:
        if not self.outer.is_valid(result):
            return False
        for event in result.get("events") or []:
            name = event.get("event") if isinstance(event, dict) else None
            check = self.by_type.get(name) if isinstance(name, str) else None
            if check is None or not check.is_valid(event):
                return False
        return True


@lru_cache(maxsize=1)
def _action_result_check() -> ActionResultCheck:
    return ActionResultCheck()


def validate_action_results_with_one_validator() -> None:
    """`RemoteAction._validate_action_result` calls `jsonschema.validate`, which checks Rasa's
    (constant) schema against the meta-schema, builds a new validator and tries every event
    against all 23 event schemas for every action call: a third of a turn's time, then still a
    tenth with one validator. The same verdict with `ActionResultCheck`; an invalid response
    goes through Rasa's own check, for Rasa's own error and message."""
    from rasa.core.actions.action import RemoteAction

    original = RemoteAction._validate_action_result

    def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
        if _action_result_check().valid(result):
            return True
        return original(self, result)  # Rasa's own path raises Rasa's own error and message

    RemoteAction._validate_action_result = _validate_action_result


def sqlite_commits_without_fsync() -> None:
    """Rasa's SQL tracker store and SQL event broker commit once per event; on SQLite each
    commit waits for the disk twice. WAL with synchronous=NORMAL (SQLite's recommended setting
    for WAL) keeps every committed event across a process crash and only a power loss can drop
    the last few, for the embedded profile only (PostgreSQL is untouched)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
        if type(dbapi_connection).__module__.startswith("sqlite3"):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()


def _pooled_sqlite_kwargs() -> dict[str, Any]:
    from sqlalchemy.pool import QueuePool

    return {"poolclass": QueuePool, "pool_size": 5, "max_overflow": 10,
            "connect_args": {"check_same_thread": False}}


def tracker_store_errors_are_not_hidden() -> None:
    """Rasa wraps the tracker store in a `FailSafeTrackerStore`: when the database cannot be
    read it answers the customer from a new, empty conversation (their identity, language and
    open form lost) and, when it cannot be written, keeps the turn in this process's memory,
    which the other Rasa servers never see and the log receives as a fresh session. Here the
    error is logged as Rasa logs it and raised: the channel answers the technical-problem reply
    (connectors/outage.py) and the customer sends the message again once the database is
    back, to the conversation as it was."""
    import logging

    from rasa.core.tracker_store import FailSafeTrackerStore

    log = logging.getLogger("rasa.core.tracker_store")

    def failed(self: FailSafeTrackerStore, what: str, error: Exception) -> None:
        log.error(f"The {self._tracker_store.__class__.__name__} could not {what} a "
                  f"conversation ({type(error).__name__}: {error}); the message is answered "
                  "with the technical-problem reply.")

    async def retrieve(self: FailSafeTrackerStore, sender_id: str) -> Any:
        try:
            return await self._tracker_store.retrieve(sender_id)
        except Exception as e:
            failed(self, "read", e)
            raise

    async def retrieve_full_tracker(self: FailSafeTrackerStore, sender_id: str) -> Any:
        try:
            return await self._tracker_store.retrieve_full_tracker(sender_id)
        except Exception as e:
            failed(self, "read", e)
            raise

    async def save(self: FailSafeTrackerStore, tracker: Any) -> None:
        try:
            await self._tracker_store.save(tracker)
        except Exception as e:
            failed(self, "save", e)
            raise

    FailSafeTrackerStore.retrieve = retrieve
    FailSafeTrackerStore.retrieve_full_tracker = retrieve_full_tracker
    FailSafeTrackerStore.save = save


def stores_reconnect_after_an_outage() -> None:
    """After PostgreSQL was restarted, the connections Rasa's SQL tracker store keeps in its
    pool are dead, and each would fail one request before it is replaced: a customer's message
    answered with the technical-problem reply although the database is back. A read or save
    that fails because its connection was lost is tried once more (SQLAlchemy's "optimistic"
    disconnect handling: the error marks every connection of the pool made before it as
    invalid, so the second try runs on a new one). A second try of a save is safe: it starts
    from the count of the first try and first looks whether the first try's last event is
    stored, so a turn whose commit did reach the database is not written twice, even one that
    started a new session (`_store`); the outbox's reads and deletes are safe to repeat too
    (`bot.event_outbox`). This replaces testing every connection before lending it
    (`pool_pre_ping`), a round trip to the database for each of the five checkouts of a turn
    (`bot.persistence.reconnect`). (Redis needs nothing: redis-py replaces
    a pooled connection the server has closed.)"""
    from functools import wraps

    from rasa.core.tracker_store import SQLTrackerStore

    from bot.persistence.reconnect import once_more_async

    def retried(method: Any) -> Any:
        @wraps(method)
        async def call(self: Any, *args: Any) -> Any:
            return await once_more_async(method, self, *args)
        return call

    for name in ("retrieve", "retrieve_full_tracker", "save"):
        setattr(SQLTrackerStore, name, retried(getattr(SQLTrackerStore, name)))


def sqlite_stores_keep_their_connections() -> None:
    """SQLAlchemy 1.4 gives a SQLite file database no connection pool (NullPool): Rasa's SQL
    tracker store and SQL event broker open, set up and close a connection for every read, save
    and published event, a fifth of the Rasa server's busy time in the embedded profile
    (bench/profile.py). A pool of open connections (SQLAlchemy 2.0's default for SQLite files)
    does that work once; the connections may be used from any thread, as Rasa uses the stores.
    PostgreSQL keeps Rasa's own settings."""
    import sqlalchemy
    import sqlalchemy.orm
    from rasa.core import tracker_store
    from rasa.core.brokers.sql import SQLEventBroker
    from sqlalchemy.engine import make_url

    original_kwargs = tracker_store.create_engine_kwargs

    def create_engine_kwargs(url: Any) -> dict[str, Any]:
        if make_url(str(url)).get_backend_name() == "sqlite":
            return _pooled_sqlite_kwargs()
        return original_kwargs(url)

    tracker_store.create_engine_kwargs = create_engine_kwargs
    original_init = SQLEventBroker.__init__

    def __init__(self: SQLEventBroker, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        if self.engine.dialect.name == "sqlite":
            url = self.engine.url
            self.engine.dispose()
            self.engine = sqlalchemy.create_engine(url, **_pooled_sqlite_kwargs())
            self.sessionmaker = sqlalchemy.orm.sessionmaker(bind=self.engine)

    SQLEventBroker.__init__ = __init__


def sql_tracker_store_streams_without_reading() -> None:
    """Before saving, Rasa's `TrackerStore.stream_events` reads the whole conversation back from
    the SQL tracker store (every event decoded and replayed into a tracker) only to count how
    many events are stored already: the new ones are `tracker.events[count:]`
    (`TrackerEventDiffEngine`), and `save` counts them again (`_additional_events`). Here the
    count is taken once per save and shared by both; when the tracker being saved is the one
    `retrieve` built (a turn: read, update, save, all under the conversation's lock), the count
    is the number of events `retrieve` read with the same query, and no query is needed. The
    same events reach the event broker and the table, in the same order. With the SQL event
    broker, a save's events are published in one transaction instead of one each (the same
    rows, each as `SQLEventBroker.publish` writes it); with RabbitMQ (production) a save's
    events go through an outbox stored in the same transaction as the events themselves
    (`bot.event_outbox`: Rasa publishes first, from memory, so a save that failed left in the
    log a turn the conversation does not have, and a process that died lost from the log turns
    the conversation has); with another broker they are published once they are stored and
    the save waits until the broker has them (`_published`). The events are stored as Rasa's
    `save` stores them (the same columns and values), with one multi-row INSERT instead of an
    ORM object per event flushed by the session's unit of work, which was most of the save's
    time (bench/profile.py), and each event's dictionary is built once for both the row and
    the outbox. The save's statements (the count when needed, the SQL broker's rows, the events
    and the outbox row) run in a worker thread, in one call: Rasa runs them in the event loop,
    which serves no other customer while it waits for the database."""
    import contextlib
    import itertools
    import json

    from rasa.core.brokers.pika import PikaEventBroker
    from rasa.core.brokers.sql import SQLEventBroker
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.trackers import DialogueStateTracker
    from rasa.shared.nlu.constants import INTENT_NAME_KEY
    from sqlalchemy import insert

    from bot import event_outbox

    original_retrieve = SQLTrackerStore.retrieve

    def _count(self: SQLTrackerStore, tracker: DialogueStateTracker) -> int:
        stored = tracker.__dict__.pop(_READ, None)  # valid for the first save only
        if stored is None:
            with self.session_scope() as session:
                stored = self._event_query(session, tracker.sender_id,
                                           fetch_events_from_all_sessions=False).count()
        return stored

    async def retrieve(self: SQLTrackerStore, sender_id: str) -> DialogueStateTracker | None:
        tracker = await original_retrieve(self, sender_id)
        if tracker is not None:  # the events of the latest session, as stored: their number
            tracker.__dict__[_READ] = len(tracker.events)
        return tracker

    async def stream_events(self: SQLTrackerStore, tracker: DialogueStateTracker) -> None:
        _stream(self, tracker)

    def _stream(self: SQLTrackerStore, tracker: DialogueStateTracker) -> None:
        if self.event_broker is None:
            return None
        stored = _count(self, tracker)
        if isinstance(self.event_broker, PikaEventBroker):  # through the outbox, in `save`
            tracker.__dict__[_OUTBOX] = True
        else:
            new_events = list(itertools.islice(tracker.events, stored, len(tracker.events)))
            if isinstance(self.event_broker, SQLEventBroker):
                _publish_in_one_transaction(self.event_broker, new_events, tracker.sender_id)
            else:  # published by `save` once they are stored
                tracker.__dict__[_TO_PUBLISH] = new_events
        tracker.__dict__[_COUNTED] = stored  # for `_additional_events`, next in `save`

    def _store(self: SQLTrackerStore, tracker: DialogueStateTracker) -> None:
        """Rasa's `save` after `stream_events`: the events not stored yet, in one transaction
        (with the turn's outbox row when the events go through the outbox)."""
        earlier = tracker.__dict__.get(_TRIED)  # a try of this save that lost its connection
        with self.session_scope() as session:
            counted = tracker.__dict__.pop(_COUNTED, None)
            if earlier is not None:
                stored, last = earlier
                if last is not None and _stored_already(self, session, tracker.sender_id, last):
                    tracker.__dict__.pop(_TRIED, None)  # its commit did reach the database
                    return
            else:
                stored = counted if counted is not None else tracker.__dict__.pop(_READ, None)
            if stored is None:  # as Rasa's `_additional_events`, in the save's own session
                stored = self._event_query(session, tracker.sender_id,
                                           fetch_events_from_all_sessions=False).count()
            events = list(itertools.islice(tracker.events, stored, len(tracker.events)))
            tracker.__dict__[_TRIED] = (stored, events[-1] if events else None)
            dicts = [event.as_dict() for event in events]
            if events:
                session.execute(insert(self.SQLEvent.__table__), [{
                    "sender_id": tracker.sender_id, "type_name": event.type_name,
                    "timestamp": data.get("timestamp"),
                    "intent_name": data.get("parse_data", {}).get("intent", {}).get(
                        INTENT_NAME_KEY),
                    "action_name": data.get("name"), "data": json.dumps(data)}
                    for event, data in zip(events, dicts)])
            if tracker.__dict__.get(_OUTBOX):  # in the same transaction as the events
                event_outbox.add(session, tracker.sender_id, dicts)
            session.commit()
        tracker.__dict__.pop(_TRIED, None)

    def _save_in_a_thread(self: SQLTrackerStore, tracker: DialogueStateTracker) -> None:
        """`stream_events` then Rasa's `save` after it, as one blocking call. On SQLite one
        save at a time, as when they ran in the event loop (the file has one writer, and a
        writer waiting for another past pysqlite's timeout would fail the turn)."""
        one_writer = self.engine.dialect.name == "sqlite"
        with _sqlite_writer(self) if one_writer else contextlib.nullcontext():
            _stream(self, tracker)
            _store(self, tracker)

    async def save(self: SQLTrackerStore, tracker: DialogueStateTracker) -> None:
        if isinstance(self.event_broker, PikaEventBroker):
            _start_outbox(self)
        try:  # the database's round trips in a worker thread: the loop serves other turns
            await to_the_end_in_a_thread(_save_in_a_thread, self, tracker)
        finally:
            stored_events = tracker.__dict__.pop(_TO_PUBLISH, None)
            through_outbox = tracker.__dict__.pop(_OUTBOX, None)
        if through_outbox:  # after the reply: RabbitMQ's confirmations are not the customer's
            event_outbox.publish_conversation_soon(self.engine, self.event_broker,
                                                   tracker.sender_id)
        elif stored_events:
            _publish_kept_events(self.event_broker)
            await self._stream_new_events(self.event_broker, stored_events, tracker.sender_id)
            await _published(self.event_broker)

    def _additional_events(self: SQLTrackerStore, session: Any,
                           tracker: DialogueStateTracker) -> Any:
        stored = tracker.__dict__.pop(_COUNTED, None)
        if stored is None:
            stored = _count(self, tracker)
        events = list(itertools.islice(tracker.events, stored, len(tracker.events)))
        if tracker.__dict__.get(_OUTBOX):  # in the same transaction as the events themselves
            event_outbox.add(session, tracker.sender_id, [e.as_dict() for e in events])
        return events

    original_init = SQLTrackerStore.__init__

    def __init__(self: SQLTrackerStore, *args: Any, **kwargs: Any) -> None:
        """Rasa's, and with RabbitMQ the outbox's sweep from the start (a Rasa server that gets
        no turn still publishes what a dead one left), when created in the server's loop."""
        import asyncio

        original_init(self, *args, **kwargs)
        if isinstance(self.event_broker, PikaEventBroker):
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # not in a loop: started by the first save
                return
            _start_outbox(self)

    SQLTrackerStore.__init__ = __init__
    SQLTrackerStore.retrieve = retrieve
    SQLTrackerStore.stream_events = stream_events
    SQLTrackerStore.save = save
    SQLTrackerStore._additional_events = _additional_events


# What the SQL tracker store notes on a tracker object: how many events of the latest session
# were stored when `retrieve` built it, and the count `stream_events` took for `save`.
_READ = "_sportello_events_read"
# A save that lost its connection (`stores_reconnect_after_an_outage` tries it again): the count
# it started from and its last event, to tell on the second try whether its commit landed.
_TRIED = "_sportello_save_tried"
_COUNTED = "_sportello_events_counted"
_TO_PUBLISH = "_sportello_events_to_publish"
_OUTBOX = "_sportello_events_through_the_outbox"


async def to_the_end_in_a_thread(fn: Any, *args: Any) -> Any:
    """`fn(*args)` in a worker thread; a caller cancelled meanwhile (Sanic cancels a request
    whose customer went away) waits until the call has ended, then is cancelled. A save must
    not go on writing after the turn ended and released the conversation's lock: the next
    message would read the conversation without it."""
    import asyncio

    call = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(call)
    except asyncio.CancelledError:
        await asyncio.wait([call])
        raise


def _sqlite_writer(store: Any) -> Any:
    """The lock of a SQLite tracker store's saves (one per store, made once)."""
    import threading

    lock = store.__dict__.get("_sportello_sqlite_writer")
    if lock is None:
        lock = store.__dict__.setdefault("_sportello_sqlite_writer", threading.Lock())
    return lock


def _stored_already(store: Any, session: Any, sender_id: str, event: Any) -> bool:
    """Whether `event` (the last of a save) is in the tracker store: the save's commit reached
    the database although its connection was lost before the answer (the count of the latest
    session cannot tell when that save started a new session)."""
    from sqlalchemy import select

    table = store.SQLEvent.__table__
    return session.execute(select(table.c.id).where(
        table.c.sender_id == sender_id, table.c.type_name == event.type_name,
        table.c.timestamp == event.timestamp).limit(1)).first() is not None


def _start_outbox(store: Any) -> None:
    """Once per tracker store: its outbox table, and the task that sweeps what dead processes
    (or a RabbitMQ outage) left in it (`bot.event_outbox`)."""
    import asyncio

    from bot import event_outbox

    if getattr(store, "_sportello_sweeper", None) is None:
        event_outbox.ensure_table(store.engine)
        store._sportello_sweeper = asyncio.get_running_loop().create_task(
            event_outbox.sweep_forever(store.engine, store.event_broker))


# How long a save waits for the broker to confirm its events (RabbitMQ away: the events stay in
# Rasa's memory and are published when it is back; the turn goes on).
PUBLISH_WAIT_SECONDS = 5.0


def pika_broker_keeps_what_was_cut_short() -> None:
    """Rasa's Pika broker keeps an event whose publication raised an error, to publish it again
    later; a publication cut short by the connection closing (aio-pika cancels what waits for
    RabbitMQ's confirmation) ends with `CancelledError`, which its `except Exception` lets
    through: the event was lost. It is kept like any failed one. The exchange is durable, and a
    task publishes the kept events once RabbitMQ is back."""
    import asyncio

    from rasa.core.brokers.pika import PikaEventBroker

    original = PikaEventBroker._publish

    async def _publish(self: PikaEventBroker, event: dict, headers: Any = None) -> None:
        try:
            await original(self, event, headers)
        except asyncio.CancelledError:
            if self.should_keep_unpublished_messages:
                self._unpublished_events.append(event)

    PikaEventBroker._publish = _publish
    original_connect = PikaEventBroker.connect

    async def connect(self: PikaEventBroker) -> None:
        """Rasa's connect, and a task that publishes what is kept once RabbitMQ is back, even
        when no turn comes to do it (`_publish_kept_events`)."""
        await original_connect(self)

        async def publish_kept() -> None:
            while True:
                await asyncio.sleep(KEPT_EVENTS_EVERY_SECONDS)
                _publish_kept_events(self)

        self._sportello_kept = asyncio.get_running_loop().create_task(publish_kept())

    PikaEventBroker.connect = connect

    async def _set_up_exchange(self: PikaEventBroker, channel: Any) -> Any:
        """Rasa's exchange, durable: a non-durable exchange disappears when RabbitMQ restarts
        and with it the binding of the log's queue, so that the events published between
        Rasa's reconnection and the queue's were routed nowhere (and confirmed)."""
        import aio_pika

        exchange = await channel.declare_exchange(
            self.exchange_name, type=aio_pika.ExchangeType.FANOUT, durable=True)
        await asyncio.gather(*[self._bind_queue(name, channel, exchange)
                               for name in self.queues])
        return exchange

    PikaEventBroker._set_up_exchange = _set_up_exchange


# How often a Rasa server tries to publish the events its broker kept while RabbitMQ was away.
KEPT_EVENTS_EVERY_SECONDS = 1.0


def _publish_kept_events(broker: Any) -> None:
    """Rasa's Pika broker keeps the events it failed to publish while RabbitMQ was away and
    publishes them again from aio-pika's reconnection callback; an event whose publication
    failed around the reconnection stays kept (seen in tests/integration/test_replicas.py:
    events missing from the log after RabbitMQ was back). Once the broker is connected, a save
    publishes what is still kept first, in order, before its own events."""
    kept = getattr(broker, "_unpublished_events", None)
    if kept and broker.is_ready():
        broker._publish_unpublished_messages()


async def _published(broker: Any) -> None:
    """Rasa's Pika broker publishes each event in a background task and returns at once; under
    load the tasks fall behind the turns, and a process that dies loses every event still
    waiting in its memory although the tracker store has them. Answering a turn only once
    RabbitMQ has confirmed its events (at most `PUBLISH_WAIT_SECONDS`) bounds that to the
    turns in flight."""
    import asyncio

    pending = list(getattr(broker, "_background_tasks", ()))
    if pending:
        await asyncio.wait(pending, timeout=PUBLISH_WAIT_SECONDS)


def _publish_in_one_transaction(broker: Any, events: list[Any], sender_id: str) -> None:
    """What `_stream_new_events` + `SQLEventBroker.publish` write for each event, in one
    transaction."""
    import json

    with broker.session_scope() as session:
        for event in events:
            body = {"sender_id": sender_id}
            body.update(event.as_dict())
            session.add(broker.SQLBrokerEvent(sender_id=sender_id, data=json.dumps(body)))
        session.commit()


def sql_tracker_store_reads_only_the_events() -> None:
    """The SQL tracker store's event query loads whole ORM rows (id, sender, type, intent,
    action, timestamp, data) for every event of a conversation, and its two users read only
    `data` (`_retrieve`) or count the rows (`_additional_events`). Selecting that one column
    gives both the same result without building an ORM object per event."""
    from rasa.core.tracker_store import SQLTrackerStore

    original = SQLTrackerStore._event_query

    def _event_query(self: SQLTrackerStore, session: Any, sender_id: str,
                     fetch_events_from_all_sessions: bool) -> Any:
        query = original(self, session, sender_id, fetch_events_from_all_sessions)
        return query.with_entities(self.SQLEvent.data)

    SQLTrackerStore._event_query = _event_query


def sql_tracker_store_reads_in_a_thread() -> None:
    """Rasa's SQL tracker store reads a conversation in the Rasa server's event loop, which
    serves no other customer until the database has answered: with ten customers at once the
    loop spent a quarter of its time waiting for PostgreSQL (bench/profile.py). The query runs
    in a worker thread; the events are decoded and the tracker built in the loop, as in Rasa's
    `_retrieve` (the same query, rows and tracker)."""
    import asyncio
    import json

    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.trackers import DialogueStateTracker

    def _read_in_a_thread(self: SQLTrackerStore, sender_id: str,
                          fetch_events_from_all_sessions: bool) -> list[str]:
        with self.session_scope() as session:
            return [row.data for row in self._event_query(
                session, sender_id,
                fetch_events_from_all_sessions=fetch_events_from_all_sessions).all()]

    async def _retrieve(self: SQLTrackerStore, sender_id: str,
                        fetch_events_from_all_sessions: bool) -> DialogueStateTracker | None:
        stored = await asyncio.to_thread(_read_in_a_thread, self, sender_id,
                                         fetch_events_from_all_sessions)
        events = [json.loads(data) for data in stored]
        if self.domain and events:
            return DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)
        return None

    SQLTrackerStore._retrieve = _retrieve


def sql_tracker_store_reads_outside_a_transaction() -> None:
    """Rasa's SQL tracker store reads a conversation in a session of its own: on PostgreSQL,
    psycopg2 opens a transaction with a BEGIN before the query, and the pool rolls it back when
    the session returns the connection, two more round trips (and two more statements for the
    server) than the one query, at every turn (`do_rollback` was 5 % of the Rasa server's
    samples in bench/profile.py). The read is one statement, which PostgreSQL runs on a snapshot
    of its own in or out of a transaction, so `_retrieve` runs it on the store's reader
    (`bot.persistence.readers`: connections in autocommit): the same rows, without the BEGIN
    and the ROLLBACK. Saves keep their transaction. A lost connection is read again by
    `stores_reconnect_after_an_outage`."""
    import contextlib
    import contextvars

    import sqlalchemy.orm
    from rasa.core.tracker_store import SQLTrackerStore, ensure_schema_exists

    from bot.persistence.readers import reader

    reading = contextvars.ContextVar("sportello_tracker_store_reading", default=False)
    original_retrieve = SQLTrackerStore._retrieve
    original_scope = SQLTrackerStore.session_scope

    async def _retrieve(self: SQLTrackerStore, sender_id: str,
                        fetch_events_from_all_sessions: bool) -> Any:
        token = reading.set(True)
        try:
            return await original_retrieve(self, sender_id, fetch_events_from_all_sessions)
        finally:
            reading.reset(token)

    @contextlib.contextmanager
    def session_scope(self: SQLTrackerStore) -> Any:
        if not (reading.get() and self.engine.dialect.name == "postgresql"):
            with original_scope(self) as session:
                yield session
            return
        session = sqlalchemy.orm.Session(bind=reader(self.engine))
        try:
            ensure_schema_exists(session)
            yield session
        finally:
            session.close()

    SQLTrackerStore._retrieve = _retrieve
    SQLTrackerStore.session_scope = session_scope


def events_find_their_class_once() -> None:
    """Every event read from the tracker store, the action server or the lock store is turned
    into its class by `Event.resolve_by_type`, which walks the whole tree of `Event`'s
    subclasses each time (`all_subclasses`): a tenth of a turn. The same answer from a table of
    the same walk, made again whenever a new subclass of `Event` is defined (Python calls
    `__init_subclass__` on it), so a class defined later is found exactly as before."""
    from rasa.shared.core.events import Event
    from rasa.shared.utils.common import all_subclasses

    original = Event.resolve_by_type
    table: dict[str, type] = {}

    def resolve_by_type(type_name: str, default: type | None = None) -> type | None:
        if not table:
            for cls in all_subclasses(Event):  # the first class of a name wins, as in Rasa
                table.setdefault(cls.type_name, cls)
        found = table.get(type_name)
        return found if found is not None else original(type_name, default)

    def __init_subclass__(cls: type, **kwargs: Any) -> None:
        table.clear()

    Event.resolve_by_type = staticmethod(resolve_by_type)
    Event.__init_subclass__ = classmethod(__init_subclass__)


# Seconds an idle connection to an endpoint is kept: under the action server's own limit (Sanic
# closes an idle connection after 5 s), so a request never goes out on a connection the server
# is closing.
KEEPALIVE_SECONDS = 2.0


def endpoints_keep_their_connections() -> None:
    """`EndpointConfig.request` (every call to the action server) opens a new aiohttp session for
    each request (a connector, a name lookup, a TCP connection, on both sides) and closes it
    afterwards. One session per endpoint and event loop, created as Rasa creates it (headers,
    basic auth, timeout), kept open, reuses its connections."""
    import asyncio

    import aiohttp
    from rasa.core.constants import DEFAULT_REQUEST_TIMEOUT
    from rasa.utils.endpoints import EndpointConfig

    class _Kept:
        """`async with` gives the kept session and leaves it open."""

        def __init__(self, session: aiohttp.ClientSession) -> None:
            self.session = session

        async def __aenter__(self) -> aiohttp.ClientSession:
            return self.session

        async def __aexit__(self, *exc: Any) -> None:
            return None

    def session(self: EndpointConfig) -> _Kept:
        loop = asyncio.get_running_loop()
        kept = self.__dict__.get("_sportello_session")
        if kept is None or kept[0] is not loop or kept[1].closed:
            auth = (aiohttp.BasicAuth(self.basic_auth["username"], self.basic_auth["password"])
                    if self.basic_auth else None)
            kept = (loop, aiohttp.ClientSession(
                headers=self.headers, auth=auth,
                timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT),
                connector=aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE_SECONDS)))
            self.__dict__["_sportello_session"] = kept
        return _Kept(kept[1])

    EndpointConfig.session = session


def _run_order(schema: Any, targets: tuple[str, ...]) -> list[str]:
    """The nodes `targets` need (the nodes of Rasa's `minimal_graph_schema`), each after the
    nodes it needs: the order in which a run calls them."""
    from rasa.engine.exceptions import GraphRunError

    wanted = set(schema.minimal_graph_schema(list(targets)).nodes)
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str) -> None:
        if state.get(name) == "done" or name not in wanted:
            return
        if state.get(name) == "visiting":
            raise GraphRunError(f"the graph has a cycle through {name!r}")
        state[name] = "visiting"
        for needed in schema.nodes[name].needs.values():
            visit(needed)
        state[name] = "done"
        order.append(name)

    for name in schema.nodes:  # every node of the minimal schema runs, as with dask
        visit(name)
    return order


def graphs_run_without_dask() -> None:
    """Every message runs two graphs (NLU, then the policies), and `DaskGraphRunner.run` builds a
    dask graph for each run and hands it to dask's scheduler, which orders and tracks its tasks
    one by one in this one thread: a tenth of the Rasa server's Python time in a turn
    (bench/profile.py). The same nodes, called the same way (each with the `(name, output)`
    pairs of the nodes it needs, in the order of its `needs`; an input replaces the node of its
    name, as in `_add_inputs_to_graph`), in an order computed once per set of targets. Training
    keeps dask (rasa/model_training.py imports its own)."""
    from rasa.core import processor
    from rasa.engine.exceptions import GraphRunError
    from rasa.engine.runner.dask import DaskGraphRunner

    class SequentialGraphRunner(DaskGraphRunner):
        """`DaskGraphRunner` with the nodes called in a precomputed order, without dask."""

        def run(self, inputs: dict[str, Any] | None = None,
                targets: list[str] | None = None) -> dict[str, Any]:
            run_targets = tuple(targets if targets else self._graph_schema.target_names)
            orders = self.__dict__.setdefault("_sportello_orders", {})
            order = orders.get(run_targets)
            if order is None:
                order = orders[run_targets] = _run_order(self._graph_schema, run_targets)
            results: dict[str, Any] = {}
            for name, value in (inputs or {}).items():
                if isinstance(value, str) and value in order:
                    raise GraphRunError(
                        f"Input value '{value}' clashes with a node name. Make sure that none "
                        f"of the input names passed to the `run` method are the same as node "
                        f"names in the graph schema.")
                results[name] = (name, value)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(f"Running graph with inputs: {inputs}, targets: {targets} "
                             f"and {self._execution_context}.")
            try:
                for name in order:
                    if name in results:  # replaced by an input
                        continue
                    needs = self._graph_schema.nodes[name].needs.values()
                    # a need that is neither a node nor an input is passed as it is (dask too)
                    results[name] = self._instantiated_nodes[name](
                        *(results.get(need, need) for need in needs))
                return dict(results[target] for target in run_targets)
            except RuntimeError as e:
                raise GraphRunError("Error running runner.") from e

    if processor.DaskGraphRunner is not DaskGraphRunner:
        raise RuntimeError("Rasa's processor no longer loads models with DaskGraphRunner: "
                           "review rasa_patches")
    processor.DaskGraphRunner = SequentialGraphRunner


class _Point:
    """What `Domain.states_for_tracker_history` reads of the tracker at one point of its history
    (before an action, or at the end): captured once, while the events are replayed."""

    __slots__ = ("message", "flag", "user", "slots", "action", "loop", "followup", "in_loop")

    def __init__(self, domain: Any, tracker: Any) -> None:
        self.message = tracker.latest_message
        self.flag = self.message.use_text_for_featurization if self.message else None
        self.user = domain._get_user_sub_state(tracker)
        self.slots = domain._get_slots_sub_state(tracker)
        self.action = tracker.latest_action
        self.loop = domain._get_active_loop_sub_state(tracker)
        self.followup = bool(tracker.followup_action)
        self.in_loop = tracker.latest_action_name == tracker.active_loop_name

    def user_state(self, domain: Any) -> dict:
        # A later `DefinePrevUserUtteredFeaturization` sets this flag on the message itself,
        # and Rasa's replay reads the message as it is now: read it again if it changed.
        if self.message and self.message.use_text_for_featurization is not self.flag:
            self.flag = self.message.use_text_for_featurization
            self.user = domain._get_user_sub_state(_LatestMessage(self.message))
        return dict(self.user)


class _LatestMessage:
    """The one thing `Domain._get_user_sub_state` reads of a tracker."""

    __slots__ = ("latest_message",)

    def __init__(self, message: Any) -> None:
        self.latest_message = message


class _PriorStates:
    """A tracker's history replayed once: the points `generate_all_prior_trackers` yields, kept
    while the tracker's applied events only grow (the same event objects, in the same order)."""

    def __init__(self, domain: Any, tracker: Any) -> None:
        self.domain = domain
        self.replay = tracker.init_copy()
        self.events: list[Any] = []
        self.points: list[tuple[_Point, Any]] = []  # (point, the ActionExecuted after it)
        self.end: _Point | None = None  # the point after all of `events`

    def extends(self, applied: list[Any]) -> bool:
        return (len(applied) >= len(self.events)
                and all(a is b for a, b in zip(self.events, applied)))

    def advance(self, applied: list[Any]) -> list[tuple[_Point, bool]]:
        from rasa.shared.core.events import ActionExecuted

        for event in applied[len(self.events):]:
            if isinstance(event, ActionExecuted):
                self.points.append((self.end or _Point(self.domain, self.replay), event))
            self.replay.update(event)
            self.events.append(event)
            self.end = None
        if self.end is None:
            self.end = _Point(self.domain, self.replay)
        return [(point, event.hide_rule_turn) for point, event in self.points] + [
            (self.end, False)]


def past_states_replay_each_event_once() -> None:
    """Each policy featurizes the tracker at each prediction (`Domain.states_for_tracker_history`,
    from `tracker.past_states`), replaying every event of the conversation on a new tracker and
    making the state of every point of it again: a turn predicts several times, with two
    policies, so the same history is replayed about eight times, a tenth of the Rasa server's
    time in a turn (bench/profile.py). The points are now kept with the tracker (for as long as
    it lives: one turn) and only the events added since are replayed; the states are made from
    them as Rasa makes them, every sub-state a new copy, so callers may change them as before.
    A history that changed otherwise (a reverted or restarted conversation, another domain) is
    replayed from the start. Only `omit_unset_slots=False`, the policies' call, is kept."""
    from rasa.shared.core import constants
    from rasa.shared.core.domain import Domain

    original = Domain.states_for_tracker_history
    user, slots_key = constants.USER, constants.SLOTS
    action_key, loop_key = constants.PREVIOUS_ACTION, constants.ACTIVE_LOOP

    def states_for_tracker_history(self: Domain, tracker: Any, omit_unset_slots: bool = False,
                                   ignore_rule_only_turns: bool = False,
                                   rule_only_data: dict[str, Any] | None = None) -> list:
        if omit_unset_slots:
            return original(self, tracker, omit_unset_slots, ignore_rule_only_turns,
                            rule_only_data)
        applied = tracker.applied_events()
        prior = tracker.__dict__.get("_sportello_prior_states")
        if prior is None or prior.domain is not self or not prior.extends(applied):
            prior = tracker.__dict__["_sportello_prior_states"] = _PriorStates(self, tracker)
        # Rasa's loop, on the kept points instead of a replayed tracker
        states: list = []
        last_ml_action_sub_state = None
        turn_was_hidden = False
        for point, hide_rule_turn in prior.advance(applied):
            # one copy per point and call: Rasa's state and last_ml_action_sub_state share it
            action = dict(point.action) if point.action is not None else None
            if ignore_rule_only_turns:
                if not turn_was_hidden:
                    last_ml_action_sub_state = action
                if not point.followup and not point.in_loop:
                    turn_was_hidden = hide_rule_turn
                if turn_was_hidden:
                    continue
            state = self._clean_state({user: point.user_state(self),
                                       slots_key: dict(point.slots),
                                       action_key: action,
                                       loop_key: dict(point.loop)})
            if ignore_rule_only_turns:
                self._remove_rule_only_features(state, rule_only_data)
                if states:
                    self._substitute_rule_only_user_input(state, states[-1])
                if last_ml_action_sub_state:
                    state[action_key] = last_ml_action_sub_state
            states.append(self._clean_state(state))
        return states

    states_for_tracker_history.__wrapped__ = original
    Domain.states_for_tracker_history = states_for_tracker_history


def rules_are_found_by_their_last_state() -> None:
    """`RulePolicy._get_possible_keys` (twice or more per prediction) tests every rule against
    the conversation's last state, then the survivors against each earlier state back to the
    conversation's start. The rules are now grouped once by what their last state asks of the
    previous action and the intent: a group whose requirement the conversation's last state
    does not meet is left out as a whole, the rules of the others are tested one by one as
    before; and the walk back stops once it is further back than the longest surviving rule,
    from where Rasa's test passes every rule. The same rules are found. The policy's lookup is
    read-only after training (this process only predicts), so the groups are made once."""
    import json

    from rasa.core.policies.rule_policy import RulePolicy
    from rasa.shared.core.constants import PREVIOUS_ACTION, USER
    from rasa.shared.nlu.constants import INTENT

    def groups(self: RulePolicy, lookup: dict[str, Any]) -> list[tuple[dict | None, list[str]]]:
        kept = self.__dict__.setdefault("_sportello_rule_groups", {})
        entry = kept.get(id(lookup))
        if entry is None or entry[0] is not lookup:
            by_requirement: dict[str, tuple[dict | None, list[str]]] = {}
            for key in lookup:
                rule_states = self._rule_key_to_state(key)
                requirement = None  # a rule without states applies everywhere
                if rule_states:
                    last = rule_states[-1]
                    requirement = {}
                    if last.get(PREVIOUS_ACTION):
                        requirement[PREVIOUS_ACTION] = last[PREVIOUS_ACTION]
                    intent = (last.get(USER) or {}).get(INTENT)
                    if isinstance(intent, str):
                        requirement[USER] = {INTENT: intent}
                name = json.dumps(requirement, sort_keys=True)
                by_requirement.setdefault(name, (requirement, []))[1].append(key)
            entry = kept[id(lookup)] = (lookup, list(by_requirement.values()))
        return entry[1]

    def meets(self: RulePolicy, requirement: dict, state: dict) -> bool:
        """Rasa's `_is_rule_applicable` for the last state, with only part of a rule's last
        state: False here means False for every rule of the group."""
        rule_previous_action = requirement.get(PREVIOUS_ACTION)
        current_previous_action = state.get(PREVIOUS_ACTION)
        if not rule_previous_action and not current_previous_action:
            return True
        if not rule_previous_action or not current_previous_action:
            return False
        return self._does_rule_match_state(requirement, state)

    def _get_possible_keys(self: RulePolicy, lookup: dict[str, Any],
                           states: list[dict]) -> set[str]:
        if not states:
            return set(lookup.keys())
        last = states[-1]
        possible = set()
        for requirement, keys in groups(self, lookup):
            if requirement is None or meets(self, requirement, last):
                possible.update(key for key in keys if self._is_rule_applicable(key, 0, last))
        for i, state in enumerate(reversed(states)):
            if i == 0:
                continue
            if i >= max((len(self._rule_key_to_state(key)) for key in possible), default=0):
                break  # Rasa's test passes a rule at a turn further back than its length
            possible = {key for key in possible if self._is_rule_applicable(key, i, state)}
        return possible

    _get_possible_keys.__wrapped__ = RulePolicy._get_possible_keys
    RulePolicy._get_possible_keys = _get_possible_keys


# Compressed keys kept per MemoizationPolicy (a few hundred bytes each); emptied when full.
MEMOIZED_KEYS_KEPT = 4096


def memoized_keys_are_compressed_once() -> None:
    """`MemoizationPolicy._create_feature_key` zlib-compresses the JSON of the last states at
    every prediction to look them up: the same few states again and again. The compressed key
    of a JSON text is kept, so each is compressed once (zlib gives the same bytes each time)."""
    import json

    from rasa.core.policies.memoization import MemoizationPolicy

    original = MemoizationPolicy._create_feature_key

    def _create_feature_key(self: MemoizationPolicy, states: list[dict]) -> str | None:
        if not states or not self.config["enable_feature_string_compression"]:
            return original(self, states)
        feature_str = json.dumps(states, sort_keys=True)
        kept = self.__dict__.setdefault("_sportello_keys", {})
        key = kept.get(feature_str)
        if key is None:
            if len(kept) >= MEMOIZED_KEYS_KEPT:
                kept.clear()
            key = kept[feature_str] = original(self, states)
        return key

    _create_feature_key.__wrapped__ = original
    MemoizationPolicy._create_feature_key = _create_feature_key


def a_single_response_variation_is_taken_as_it_is() -> None:
    """`TemplatedNaturalLanguageGenerator._random_response_for` (every response of every turn)
    picks a variation with `np.random.choice`, which first turns the list of variations into a
    numpy array, and formats the chosen variation's conditions for a debug line even when debug
    is off. Most of our responses have one variation per language, so one is left after the
    filter: it is taken as it is; with several, numpy chooses as before."""
    import numpy as np
    from rasa.core.nlg import response
    from rasa.core.nlg.generator import ResponseVariationFilter
    from rasa.shared.constants import RESPONSE_CONDITION

    nlg = response.TemplatedNaturalLanguageGenerator
    original = nlg._random_response_for

    def _random_response_for(self: Any, utter_action: str, output_channel: str,
                             filled_slots: dict[str, Any]) -> dict[str, Any] | None:
        if utter_action not in self.responses:
            return None
        suitable = ResponseVariationFilter(self.responses).responses_for_utter_action(
            utter_action, output_channel, filled_slots)
        if not suitable:
            return None
        selected = suitable[0] if len(suitable) == 1 else np.random.choice(suitable)
        condition = selected.get(RESPONSE_CONDITION)
        if condition and response.logger.isEnabledFor(logging.DEBUG):
            response.logger.debug("Selecting response variation with conditions:"
                                  f"{self._format_response_conditions(condition)}")
        return selected

    _random_response_for.__wrapped__ = original
    nlg._random_response_for = _random_response_for
