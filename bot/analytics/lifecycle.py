"""The end of personal data: erasure of one customer on request, and retention.

`erase_customer(code)` (``python -m bot erase-customer CODE``) removes everything Sportello
holds of one customer:

- the customer history: the customer row, identities, supplies and their readings, bills,
  tickets, interactions, one-time codes, the contact history (every e-mail address and phone
  number they ever had, `contact_history`), the outbox rows addressed to any of those
  contacts, current or past (and their lines in an old `var/outbox.log`, which the embedded
  profile once wrote), the verification state (the send and failure counters of the code and
  of every one of those contacts, `verification_counters`, and the legacy
  `verification_states` row), the options last sent to their channel ids
  (`channel_options`), their handovers and the handovers' transitions;
- for every conversation (sender id) in which the customer was identified, the whole of it,
  the anonymous part before they verified included: in the conversation log every session of
  those sender ids and every conversation of the customer; their handovers and one-time codes,
  whoever the codes were for, and their failure counters; the options last sent to them;
- Rasa's tracker store and the event broker's table: every event of those sender ids.

The sender ids are found everywhere they can be: the log, the customer's channel identities
(on messaging apps the sender id is the app's user id), their handovers, one-time codes,
tickets and interactions, and any event of the tracker store or event stream that names the
customer (a session the log has not read yet, or a code typed before verifying): a slot whose
value is the customer code, or a message whose metadata carries the customer a channel proved
or the site's customer token for them (expired or not).
A sender id that another customer also used is erased whole: a tracker cannot be split; and an
outbox row to a contact another customer shares (or had later) goes too.
Kept: the admins' reveal audit (who revealed which conversation number, when, and the reason
they gave), the accountability record of access to personal data.

Rasa's stores are emptied first and the customer history last, in one transaction: if anything
fails half-way the customer is still there, and running the command again finishes the job.
Then an `ErasureRecord` says that an erasure happened and how much was removed: never whose.
While the customer database is changed the conversation log's stream cursor is held, so the
desk cannot write a batch of the erased sessions in between (on PostgreSQL it also waits for a
batch being written); a last pass removes any batch that was already on its way.

`purge(days)` (``python -m bot purge``) applies the retention period: conversations whose last
event is older than the cutoff leave the log; Rasa's events older than the cutoff leave the
tracker store and the event stream (for a sender whose kept session began before the cutoff,
only the events before that session); closed handovers, outbox rows and remembered options
older than the cutoff, expired one-time codes and the delivered-message ids the channels no
longer need (`bot.channel_state.forget_old_deliveries`) go too.

On SQLite the deleting connections use `secure_delete`, so the erased rows do not linger in
the database file's free pages, and the full-text index of the transcript is optimised, so no
erased word stays in its old segments. PostgreSQL reclaims deleted rows with (auto)vacuum.
"""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import jwt
from sqlalchemy import create_engine, delete, func, inspect, or_, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.expression import ColumnElement, Select

from bot.analytics.ingest import known_of
from bot.analytics.models import (
    Conversation,
    ConversationIntent,
    ConversationMessage,
    ConversationNote,
    ConversationTag,
    ConversationTask,
    ErasureRecord,
    MessageAnnotation,
    MissingSkillMark,
    StreamCursor,
)
from bot.analytics.redact import redact
from bot.crm import models as m
from bot.crm.service import _key as _counter_key, verification_keys
from bot.handover.models import OPEN_STATES, Handover, HandoverTransition
from bot.persistence import tables
from bot.persistence.db import get_sessionmaker
from bot.settings import get_settings

SOURCE = "rasa-events"  # the log's stream cursor (bot.analytics.ingest.SOURCE)
CHUNK = 500  # sender ids per IN (...) list


# ---- Rasa's stores -------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    connect_args = {"timeout": 30} if url.startswith("sqlite") else {}
    return create_engine(url, future=True, pool_pre_ping=True, connect_args=connect_args)


def _secure(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA secure_delete = ON")


def _highest_id(conn: Connection) -> int | None:
    return conn.execute(text("SELECT MAX(id) FROM events")).scalar()


def _keep_ids_growing(conn: Connection, top: int | None) -> None:
    """SQLite numbers a new row after the highest id left: once the newest events are deleted,
    the next ones would reuse ids that the desk and the conversation log have already read past,
    and be skipped. An empty event (no sender, `{}`) keeps the highest id in the event broker's
    table (id, sender_id, data); PostgreSQL's sequences never go back."""
    if top is None or conn.dialect.name != "sqlite":
        return
    columns = {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(events)")}
    if columns == {"id", "sender_id", "data"} and (_highest_id(conn) or 0) < top:
        conn.execute(text("INSERT INTO events (id, sender_id, data) VALUES (:id, '', '{}')"),
                     {"id": top})


def _has_events(engine: Engine) -> bool:
    try:
        return inspect(engine).has_table("events")
    except Exception:  # the database does not exist yet: Rasa never started
        return False


def _chunks(values: list[str], size: int = CHUNK) -> Iterable[list[str]]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


def _token_subject(token: object, cache: dict[str, str | None]) -> str | None:
    """The customer code a customer token names (its `sub`), expired or not and whatever key
    signed it: a conversation carrying a token of the customer is theirs to erase."""
    if not isinstance(token, str) or not token or len(token) > 4096:
        return None
    if token not in cache:
        try:
            sub = jwt.decode(token, options={"verify_signature": False}).get("sub")
        except (jwt.PyJWTError, AttributeError):
            sub = None
        cache[token] = sub.upper() if isinstance(sub, str) else None
    return cache[token]


def _names_customer(event: dict, code: str, tokens: dict[str, str | None]) -> bool:
    """Whether a Rasa event identifies customer `code`: a slot set to the code (the identified
    customer, a code typed to verify), or a user message whose metadata names them (the
    customer a channel proved, `{"customer": {"code": ...}}`, or the site's customer token
    itself, as events written before channels replaced it carry)."""
    kind = event.get("event")
    if kind == "slot":
        return str(event.get("value") or "").upper() == code
    if kind == "user":
        metadata = event.get("metadata")
        if not isinstance(metadata, dict):
            return False
        proved = metadata.get("customer")
        if isinstance(proved, dict) and str(proved.get("code") or "").upper() == code:
            return True
        return _token_subject(metadata.get("customer_token"), tokens) == code
    return False


def _senders_with_code(url: str, code: str, slot_column: bool) -> set[str]:
    """Sender ids with an event that identifies customer `code` (`_names_customer`) in an
    `events` table (Rasa's tracker store when `slot_column`, which has `type_name`; else the
    event broker's)."""
    if not url:
        return set()
    engine = _engine(url)
    if not _has_events(engine):
        return set()
    query = ("SELECT sender_id, data FROM events "
             "WHERE (lower(data) LIKE :pattern OR data LIKE :token)")
    if slot_column:
        query += " AND type_name IN ('slot', 'user')"
    found, tokens = set(), {}
    code = code.upper()
    with engine.connect() as c:
        for sender, data in c.execute(text(query), {"pattern": f'%"{code.lower()}"%',
                                                    "token": "%customer_token%"}):
            try:
                event = json.loads(data)
            except (TypeError, ValueError):
                continue
            if sender and isinstance(event, dict) and _names_customer(event, code, tokens):
                found.add(sender)
    return found


def _delete_events_of(url: str, senders: list[str]) -> int:
    """Delete every event of `senders` from an `events` table; the number of rows."""
    if not url or not senders:
        return 0
    engine = _engine(url)
    if not _has_events(engine):
        return 0
    n = 0
    with engine.begin() as c:
        _secure(c)
        top = _highest_id(c)
        for chunk in _chunks(senders):
            params = {f"s{i}": s for i, s in enumerate(chunk)}
            marks = ", ".join(f":s{i}" for i in range(len(chunk)))
            n += c.execute(text(f"DELETE FROM events WHERE sender_id IN ({marks})"),
                           params).rowcount
        _keep_ids_growing(c, top)
    return n


def _event_timestamp_sql(dialect: str) -> str:
    """The `timestamp` inside the event broker's JSON `data`, as a number."""
    if dialect == "postgresql":
        return "CAST((data::json ->> 'timestamp') AS double precision)"
    return "CAST(json_extract(data, '$.timestamp') AS REAL)"


def _delete_events_before(url: str, cutoff: float, spanning: dict[str, float],
                          broker: bool) -> int:
    """Delete the events older than `cutoff`, except, for the senders in `spanning`, those from
    the start of their oldest kept session on (a session that began before the cutoff and goes
    on after it keeps all its events)."""
    if not url:
        return 0
    engine = _engine(url)
    if not _has_events(engine):
        return 0
    ts = _event_timestamp_sql(engine.dialect.name) if broker else "timestamp"
    n = 0
    with engine.begin() as c:
        _secure(c)
        top = _highest_id(c)
        keep = sorted(spanning)
        if keep:
            # the spanning senders first, up to their own boundary
            for sender in keep:
                n += c.execute(text(f"DELETE FROM events WHERE sender_id = :s AND {ts} < :b"),
                               {"s": sender, "b": spanning[sender]}).rowcount
            params = {f"s{i}": s for i, s in enumerate(keep)}
            marks = ", ".join(f":s{i}" for i in range(len(keep)))
            n += c.execute(text(f"DELETE FROM events WHERE {ts} < :cutoff "
                                f"AND sender_id NOT IN ({marks})"),
                           {"cutoff": cutoff, **params}).rowcount
        else:
            n += c.execute(text(f"DELETE FROM events WHERE {ts} < :cutoff"),
                           {"cutoff": cutoff}).rowcount
        _keep_ids_growing(c, top)
    return n


# ---- the customer database -----------------------------------------------------------------


def _hold_cursor(db: Session) -> None:
    """Hold the log's stream cursor until the transaction ends: the log worker's sync waits."""
    if db.bind.dialect.name == "postgresql":
        db.execute(select(StreamCursor).where(StreamCursor.source == SOURCE).with_for_update())
    else:  # SQLite: take the write lock now (one writer at a time)
        db.execute(update(StreamCursor).where(StreamCursor.source == SOURCE)
                   .values(updated_at=StreamCursor.updated_at))
        db.execute(text("PRAGMA secure_delete = ON"))


def _delete_handovers(db: Session, counts: dict, ids: Select) -> None:
    """Delete the handovers `ids` selects and their transitions; count both in `counts`."""
    counts["handover_transitions"] = db.execute(
        delete(HandoverTransition).where(
            HandoverTransition.handover_id.in_(ids.scalar_subquery())),
        execution_options={"synchronize_session": False}).rowcount
    counts["handovers"] = db.execute(
        delete(Handover).where(Handover.id.in_(ids.scalar_subquery())),
        execution_options={"synchronize_session": False}).rowcount


def _delete_conversations(db: Session, where: ColumnElement) -> int:
    """Delete the conversations matching `where` and everything hanging off them."""
    ids = select(Conversation.id).where(where).scalar_subquery()
    message_ids = select(ConversationMessage.id).where(
        ConversationMessage.conversation_id.in_(ids)).scalar_subquery()
    for model in (MessageAnnotation, MissingSkillMark):
        db.execute(delete(model).where(model.message_id.in_(message_ids)),
                   execution_options={"synchronize_session": False})
    for model in (ConversationMessage, ConversationIntent, ConversationTag, ConversationNote,
                  ConversationTask):
        db.execute(delete(model).where(model.conversation_id.in_(ids)),
                   execution_options={"synchronize_session": False})
    return db.execute(delete(Conversation).where(where),
                      execution_options={"synchronize_session": False}).rowcount


def _optimize_fts(db: Session) -> None:
    if db.bind.dialect.name == "sqlite":
        db.execute(text("INSERT INTO conversation_messages_fts(conversation_messages_fts) "
                        "VALUES ('optimize')"))


def _checkpoint(url: str) -> None:
    """SQLite in WAL mode: write the (zeroed) pages back into the file and empty the WAL."""
    if url.startswith("sqlite"):
        from bot.persistence.db import get_engine

        with get_engine(url).connect() as c:
            c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _senders_in_log(db: Session, code: str) -> set[str]:
    return set(db.execute(select(Conversation.sender_id)
                          .where(Conversation.customer_code == code).distinct()).scalars())


def _contacts_of(db: Session, customer: m.Customer) -> list[str]:
    """Every e-mail address and phone number the customer has had: the current ones and the
    contact history's."""
    values = {customer.email, customer.phone}
    values.update(db.execute(select(m.ContactHistory.value).where(
        m.ContactHistory.customer_id == customer.id)).scalars())
    return sorted(v for v in values if v)


def _in(column: InstrumentedAttribute, values: list[str]):
    """`column IN values`, in chunks (an OR of IN lists); false for no values."""
    if not values:
        return column.in_([])
    return or_(*(column.in_(chunk) for chunk in _chunks(values)))


@dataclass
class Erasure:
    found: bool
    senders: int = 0
    conversations: int = 0
    tracker_events: int = 0
    broker_events: int = 0
    history: dict[str, int] = field(default_factory=dict)  # table -> rows deleted
    record_id: int | None = None

    @property
    def history_rows(self) -> int:
        return sum(self.history.values())


def _default_requester() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "cli"


def erase_customer(code: str, reference: str = "", requested_by: str = "") -> Erasure:
    """Erase everything of customer `code` (see the module docstring). `found` is False, and
    nothing is changed, when nothing at all is known of that code."""
    code = code.strip().upper()
    settings = get_settings()
    # Sessions the log may not have read yet, or codes typed before verifying: read-only scans
    # of Rasa's stores, before anything is locked.
    in_rasa = (_senders_with_code(settings.tracker_database_url, code, slot_column=True)
               | _senders_with_code(settings.events_database_url, code, slot_column=False))
    known = known_of(code)  # read before anything is deleted
    db = get_sessionmaker(settings.database_url)()
    try:
        customer = db.execute(select(m.Customer).where(m.Customer.customer_code == code)
                              ).scalar_one_or_none()
        senders = _senders_in_log(db, code)
        contacts: list[str] = []
        channel_ids: set[tuple[str, str]] = set()
        if customer is not None:
            cid = customer.id
            contacts = _contacts_of(db, customer)
            for channel, external_id in db.execute(
                    select(m.Identity.channel, m.Identity.external_id)
                    .where(m.Identity.customer_id == cid)):
                channel_ids.add((channel, external_id))
                senders.add(external_id)
            for column, where in (
                    (m.OneTimeCode.conversation_id, m.OneTimeCode.customer_id == cid),
                    (m.Ticket.conversation_id, m.Ticket.customer_id == cid),
                    (m.Interaction.conversation_id, m.Interaction.customer_id == cid)):
                senders.update(s for s in db.execute(select(column).where(where)).scalars() if s)
        senders.update(s for s in db.execute(select(Handover.conversation_id).where(
            Handover.customer_code == code)).scalars() if s)
        senders |= in_rasa
        sender_list = sorted(senders)
        if customer is None and not sender_list:
            db.rollback()
            return Erasure(found=False)

        # Rasa's stores first: should anything fail later, the customer is still there and
        # running the erasure again finishes it.
        result = Erasure(found=True, senders=len(sender_list))
        result.broker_events = _delete_events_of(settings.events_database_url, sender_list)
        result.tracker_events = _delete_events_of(settings.tracker_database_url, sender_list)

        # The customer database, in this one transaction, with the log's cursor held: the worker
        # cannot write a batch of these sessions between here and the commit.
        _hold_cursor(db)
        h = result.history
        if customer is not None:
            cid = customer.id
            supplies = select(m.Supply.id).where(m.Supply.customer_id == cid).scalar_subquery()
            steps = [
                ("readings", delete(m.Reading).where(m.Reading.supply_pk.in_(supplies))),
                ("bills", delete(m.Bill).where(m.Bill.customer_id == cid)),
                ("supplies", delete(m.Supply).where(m.Supply.customer_id == cid)),
                ("identities", delete(m.Identity).where(m.Identity.customer_id == cid)),
                ("tickets", delete(m.Ticket).where(m.Ticket.customer_id == cid)),
                ("interactions", delete(m.Interaction).where(m.Interaction.customer_id == cid)),
                ("one_time_codes", delete(m.OneTimeCode).where(m.OneTimeCode.customer_id == cid)),
                ("verification_states", delete(m.VerificationState)
                 .where(m.VerificationState.customer_id == cid)),
                ("outbox", delete(tables.OutboxMessage)
                 .where(_in(tables.OutboxMessage.destination, contacts))),
                ("contact_history", delete(m.ContactHistory)
                 .where(m.ContactHistory.customer_id == cid)),
            ]
            for table, statement in steps:
                h[table] = db.execute(statement,
                                      execution_options={"synchronize_session": False}).rowcount
        # codes sent in the erased conversations to whoever was named there
        h["one_time_codes"] = h.get("one_time_codes", 0) + db.execute(
            delete(m.OneTimeCode).where(_in(m.OneTimeCode.conversation_id, sender_list)),
            execution_options={"synchronize_session": False}).rowcount
        # the one-time-code counters of the code, of every contact and of those conversations
        counters = verification_keys(code, contacts) + [_counter_key("fail:sender", s)
                                                        for s in sender_list]
        h["verification_counters"] = db.execute(
            delete(m.VerificationCounter).where(_in(m.VerificationCounter.key, counters)),
            execution_options={"synchronize_session": False}).rowcount
        recipients = sorted(senders | {external_id for _, external_id in channel_ids})
        h["channel_options"] = db.execute(
            delete(tables.ChannelOptions).where(_in(tables.ChannelOptions.recipient, recipients)),
            execution_options={"synchronize_session": False}).rowcount
        _delete_handovers(db, h, select(Handover.id).where(or_(
            Handover.customer_code == code, _in(Handover.conversation_id, sender_list))))
        if customer is not None:
            h["customers"] = db.execute(delete(m.Customer).where(m.Customer.id == customer.id),
                                        execution_options={"synchronize_session": False}
                                        ).rowcount
        result.conversations = _delete_conversations(
            db, or_(Conversation.customer_code == code,
                    _in(Conversation.sender_id, sender_list)))
        _optimize_fts(db)
        h["outbox_log_lines"] = _scrub_outbox_log(settings.outbox_log, contacts)
        # free text typed by whoever runs it: masked, with this customer's details too
        record = ErasureRecord(kind="customer", reference=redact(reference, known)[:100],
                               requested_by=redact(requested_by or _default_requester(),
                                                   known)[:64],
                               conversations=result.conversations,
                               tracker_events=result.tracker_events + result.broker_events,
                               history_rows=result.history_rows)
        db.add(record)
        db.commit()
        result.record_id = record.id
    except BaseException:
        db.rollback()
        raise
    finally:
        db.close()

    # A batch the desk had already read before the cursor was held may have landed since.
    with get_sessionmaker(settings.database_url)() as late:
        again = _delete_conversations(late, or_(Conversation.customer_code == code,
                                                _in(Conversation.sender_id, sender_list)))
        late.commit()
    if again:
        result.conversations += again
        with get_sessionmaker(settings.database_url)() as fix:
            fix.execute(update(ErasureRecord).where(ErasureRecord.id == result.record_id)
                        .values(conversations=result.conversations))
            fix.commit()
    _checkpoint(settings.database_url)
    return result


def _scrub_outbox_log(path: Path, contacts: list[str]) -> int:
    """Remove the lines of the embedded profile's outbox log (`time, medium, destination, body`,
    tab-separated; no longer written, but an old file may still be there) that name any of
    `contacts` in any field."""
    if not contacts or not path.exists():
        return 0
    wanted = set(contacts)
    kept, removed = [], 0
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if wanted.intersection(part.strip() for part in line.split("\t")):
            removed += 1
        else:
            kept.append(line)
    if removed:
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(kept), encoding="utf-8")
        tmp.replace(path)
    return removed


# ---- retention -----------------------------------------------------------------------------


@dataclass
class Purge:
    cutoff: datetime
    conversations: int = 0
    tracker_events: int = 0
    broker_events: int = 0
    history: dict[str, int] = field(default_factory=dict)
    record_id: int | None = None

    @property
    def history_rows(self) -> int:
        return sum(self.history.values())


def purge(days: int, requested_by: str = "", now: datetime | None = None) -> Purge:
    """Delete what is older than `days` days (see the module docstring)."""
    if days is None or days < 1:
        raise ValueError("the retention period must be at least 1 day")
    from bot.channel_state import forget_old_deliveries

    settings = get_settings()
    now = now or datetime.now(timezone.utc)
    cutoff = now - timedelta(days=days)
    result = Purge(cutoff=cutoff)

    # Rasa's stores: a sender whose kept session began before the cutoff keeps that session.
    with get_sessionmaker(settings.database_url)() as db:
        spanning = dict(db.execute(
            select(Conversation.sender_id, func.min(Conversation.session_start))
            .where(Conversation.last_event_at >= cutoff,
                   Conversation.session_start < cutoff.timestamp())
            .group_by(Conversation.sender_id)).all())
    result.tracker_events = _delete_events_before(settings.tracker_database_url,
                                                  cutoff.timestamp(), spanning, broker=False)
    result.broker_events = _delete_events_before(settings.events_database_url,
                                                 cutoff.timestamp(), spanning, broker=True)

    db = get_sessionmaker(settings.database_url)()
    try:
        if db.bind.dialect.name == "sqlite":
            db.execute(text("PRAGMA secure_delete = ON"))
        result.conversations = _delete_conversations(db, Conversation.last_event_at < cutoff)
        h = result.history
        _delete_handovers(db, h, select(Handover.id).where(Handover.created_at < cutoff,
                                                           Handover.state.not_in(OPEN_STATES)))
        h["one_time_codes"] = db.execute(
            delete(m.OneTimeCode).where(m.OneTimeCode.expires_at < now),
            execution_options={"synchronize_session": False}).rowcount
        h["outbox"] = db.execute(
            delete(tables.OutboxMessage).where(tables.OutboxMessage.created_at < cutoff),
            execution_options={"synchronize_session": False}).rowcount
        h["channel_options"] = db.execute(
            delete(tables.ChannelOptions).where(tables.ChannelOptions.sent_at < cutoff),
            execution_options={"synchronize_session": False}).rowcount
        if result.conversations:
            _optimize_fts(db)
        db.commit()
    except BaseException:
        db.rollback()
        raise
    finally:
        db.close()
    h["channel_messages"] = forget_old_deliveries()
    with get_sessionmaker(settings.database_url)() as db:
        record = ErasureRecord(kind="retention", reference=f"older than {days} days",
                               requested_by=(requested_by or _default_requester())[:64],
                               conversations=result.conversations,
                               tracker_events=result.tracker_events + result.broker_events,
                               history_rows=result.history_rows, at=now)
        db.add(record)
        db.commit()
        result.record_id = record.id
    _checkpoint(settings.database_url)
    return result

