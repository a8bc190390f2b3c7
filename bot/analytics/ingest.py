"""The conversation log, built from Rasa's event stream.

Rasa's SQL event broker (endpoints*.yml) appends every tracker event to a table `events`
(SQLite in the embedded profile, PostgreSQL in production). `sync()` reads the rows after the
stored cursor, turns them into conversation records (`bot.analytics.models`) and moves the cursor
in the same transaction: a crash or restart of any process neither loses an event nor counts one
twice, and two processes syncing at once cannot both take the same rows (the cursor row is
locked on PostgreSQL; SQLite lets one writer through at a time).

One record per conversation session: Rasa's `session_started` event opens a new one. A session
ends when a new one starts for the same sender, or when nothing happened in it for
`CONVERSATION_IDLE_MINUTES` (`sweep()`).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, selectinload

from bot import event_stream
from bot.analytics.models import (
    Conversation,
    ConversationIntent,
    ConversationMessage,
    StreamCursor,
    stage_of,
)
from bot.analytics.redact import Known, redact, redact_value
from bot.analytics.tasks import TaskLog
from bot.channels import logged_channel
from bot.language import LANGUAGES
from bot.persistence.db import session_scope
from bot.settings import get_settings

log = logging.getLogger(__name__)
SOURCE = "rasa-events"
FALLBACK_INTENT = "nlu_fallback"
OUT_OF_SCOPE_INTENT = "out_of_scope"
# Rasa's and Sportello's bookkeeping actions, not worth a line in the transcript.
QUIET_ACTIONS = {"action_listen", "action_session_start", "action_update_context"}
# The bot could not find a person: the customer asked for one and was offered a callback or a
# ticket instead (actions/handover.py).
NO_AGENT_RESPONSES = {"utter_handover_no_agent", "utter_handover_closed"}
REASON_OF_ACTION = {"action_request_human": "request_human",
                    "action_nlu_fallback": "misunderstanding", "action_out_of_scope": "vip",
                    "action_move_home": "move_home", "action_complaint_submit": "complaint"}


def _when(ts: Any) -> datetime:
    try:
        return datetime.fromtimestamp(float(ts), timezone.utc)
    except (TypeError, ValueError):
        return datetime.now(timezone.utc)


@dataclass
class _Open:
    """A conversation being built in this batch, with what masking needs to know."""

    conv: Conversation
    known: Known | None = None
    last_action: str = ""
    paused: bool = False
    intents: dict[str, ConversationIntent] = field(default_factory=dict)


# A rating and nothing else: "4", "4/5", "5 stelle", "3 stars." (no comment in it)
_BARE_RATING = re.compile(r"^\s*\d\s*(/\s*5)?\s*(stell[ae]|stars?|punti|points?)?\s*[.!]*\s*$",
                          re.IGNORECASE)


def is_comment(text: str) -> bool:
    """Whether a `give_feedback` message says something beyond the rating: not a button's
    payload (`/give_feedback{"rating": "4"}`) nor a bare rating."""
    return bool(text) and not text.startswith("/") and not _BARE_RATING.match(text)


class LogBuilder:
    """Applies events to the conversation records of one database transaction."""

    def __init__(self, db: Session) -> None:
        self.db = db
        self.open: dict[str, _Open] = {}
        self.known: dict[str, Known] = {}  # by customer code, read once per batch
        self.new: set[str] = set()  # senders `prefetch` found no conversation of

    # ---- conversations -----------------------------------------------------------------------

    def _latest(self, sender: str) -> _Open | None:
        if sender in self.open:
            return self.open[sender]
        if sender in self.new:
            return None
        with self.db.no_autoflush:  # the batch's new lines are written once, at its commit
            conv = self.db.execute(select(Conversation).where(Conversation.sender_id == sender)
                                   .order_by(Conversation.session_start.desc(),
                                             Conversation.id.desc()).limit(1)
                                   ).scalar_one_or_none()
            if conv is None:
                return None
            return self._opened(conv, self._known(conv.customer_code))

    def _opened(self, conv: Conversation, known: Known | None) -> _Open:
        state = _Open(conv, known=known)
        state.intents = {i.intent: i for i in conv.intents}
        state.paused = conv.handed_over and conv.handover_state in ("queued", "assigned")
        self.open[conv.sender_id] = state
        return state

    def _known(self, code: str | None) -> Known | None:
        """`known_of`, read in this builder's transaction (once per customer)."""
        if not code:
            return None
        if code not in self.known:
            self._read_known([code])
        return self.known[code]

    def _read_known(self, codes: Iterable[str]) -> None:
        wanted = sorted({c for c in codes if c and c not in self.known})
        if wanted:
            with self.db.no_autoflush:
                found = known_of_many(self.db, wanted)
            self.known.update({code: found.get(code, Known()) for code in wanted})

    def prefetch(self, events: list[tuple[str, dict]]) -> None:
        """The latest conversation of each sender of `events`, with what applying them reads of
        it (its intents, lines and tasks), and what masking needs of its customer and of those
        the events identify, in a few queries for a whole batch: one by one, a batch of a busy
        hour read each conversation in six queries, and flushed the lines before each
        (bench/profile.py)."""
        self._read_known(str(e.get("value"))[:8] for _, e in events
                         if e.get("event") == "slot" and e.get("name") == "customer_code"
                         and e.get("value"))
        wanted = [s for s in dict.fromkeys(sender for sender, _ in events)
                  if s and s not in self.open]
        with self.db.no_autoflush:
            for start in range(0, len(wanted), PREFETCH_CHUNK):
                chunk = wanted[start:start + PREFETCH_CHUNK]
                latest = (select(Conversation.sender_id,
                                 func.max(Conversation.session_start).label("start"))
                          .where(Conversation.sender_id.in_(chunk))
                          .group_by(Conversation.sender_id).subquery())
                found: dict[str, Conversation] = {}
                for conv in self.db.execute(
                        select(Conversation)
                        .join(latest, and_(Conversation.sender_id == latest.c.sender_id,
                                           Conversation.session_start == latest.c.start))
                        .order_by(Conversation.id)  # two sessions started at once: the newer
                        .options(selectinload(Conversation.intents),
                                 selectinload(Conversation.messages),
                                 selectinload(Conversation.tasks))).scalars():
                    found[conv.sender_id] = conv
                self.new.update(s for s in chunk if s not in found)
                self._read_known(c.customer_code for c in found.values())
                for conv in found.values():
                    self._opened(conv, self._known(conv.customer_code))

    def _start(self, sender: str, ts: float, previous: _Open | None) -> _Open:
        when = _when(ts)
        conv = Conversation(sender_id=sender, session_start=float(ts), started_at=when,
                            last_event_at=when, turns=0, fallbacks=0, failures=0,
                            outcome="contained", ended=False, handed_over=False,
                            last_was_fallback=False,
                            reviewed=False, channel="", language="it")
        if previous is not None:  # slots carried over to the new session (domain session_config)
            conv.language = previous.conv.language
            conv.customer_code = previous.conv.customer_code
            conv.persona = previous.conv.persona
            conv.channel = previous.conv.channel
            _finish(previous.conv, previous.conv.last_event_at)
        self.db.add(conv)
        state = _Open(conv, known=previous.known if previous else None)
        self.open[sender] = state
        return state

    def _current(self, sender: str, ts: float) -> _Open:
        state = self._latest(sender)
        if state is None:
            state = self._start(sender, ts, None)
        return state

    # ---- events ------------------------------------------------------------------------------

    def apply(self, sender: str, event: dict) -> None:
        kind = event.get("event")
        ts = event.get("timestamp") or 0
        if not sender or not kind:
            return
        if kind == "action" and event.get("name") == "action_session_start":
            return  # belongs to the session that `session_started` opens next
        if kind == "session_started":
            previous = self._latest(sender)
            if previous is not None and previous.conv.turns == 0 and not previous.conv.messages:
                # an empty session (Rasa starts one before the first message): reuse it
                previous.conv.session_start = float(ts)
                previous.conv.started_at = previous.conv.last_event_at = _when(ts)
                return
            self._start(sender, ts, previous)
            return
        state = self._current(sender, ts)
        conv = state.conv
        when = _when(ts)
        if when > conv.last_event_at:
            conv.last_event_at = when
        if conv.ended:  # activity after an idle end: the session goes on
            conv.ended, conv.ended_at = False, None
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(state, event, when)
        conv.outcome = outcome_of(conv)
        TaskLog(conv).refresh()

    def _line(self, state: _Open, when: datetime, sender: str, text: str,
              **extra) -> ConversationMessage:
        msg = ConversationMessage(at=when, sender=sender, text=text, handover=state.paused,
                                  fallback=extra.pop("fallback", False), **extra)
        state.conv.messages.append(msg)
        return msg

    def _on_user(self, state: _Open, event: dict, when: datetime) -> None:
        conv = state.conv
        parse = event.get("parse_data") or {}
        intent = (parse.get("intent") or {}).get("name") or ""
        confidence = (parse.get("intent") or {}).get("confidence")
        channel = event.get("input_channel") or ""
        if channel:
            conv.channel = logged_channel(channel)
        entities = [{"entity": e.get("entity"), "value": redact_value(e.get("entity"),
                                                                      e.get("value"))}
                    for e in parse.get("entities") or [] if e.get("entity")]
        fallback = intent == FALLBACK_INTENT
        line = self._line(state, when, "customer", redact(event.get("text") or "", state.known),
                          intent=intent or None,
                          confidence=float(confidence) if confidence is not None else None,
                          entities=json.dumps(entities, ensure_ascii=False) if entities else None,
                          fallback=fallback)
        if state.paused:  # said to a person: not a turn of the bot's
            return
        TaskLog(conv).on_customer(line, intent, event.get("text") or "", when)
        conv.turns += 1
        conv.last_was_fallback = fallback
        if fallback:
            conv.fallbacks += 1
        elif intent:
            row = state.intents.get(intent)
            if row is None:
                row = ConversationIntent(intent=intent, stage=stage_of(intent), count=0)
                conv.intents.append(row)
                state.intents[intent] = row
            row.count += 1
            if intent == "give_feedback":
                text = redact(event.get("text") or "", state.known).strip()
                if is_comment(text):
                    conv.csat_comment = text[:1000]

    def _on_bot(self, state: _Open, event: dict, when: datetime) -> None:
        metadata = event.get("metadata") or {}
        agent = metadata.get("agent")
        line = self._line(state, when, "agent" if agent else "bot",
                          redact(event.get("text") or "", state.known), agent=agent or None)
        if not agent:
            TaskLog(state.conv).on_reply(line, metadata, when)
        if metadata.get("utter_action") in NO_AGENT_RESPONSES and not state.conv.handover_id:
            conv = state.conv
            TaskLog(conv).on_handover(when)
            conv.handed_over = True
            conv.handover_state = "unavailable"
            conv.handover_reason = REASON_OF_ACTION.get(state.last_action, "request_human")

    def _on_action(self, state: _Open, event: dict, when: datetime) -> None:
        name = event.get("name") or ""
        if name in QUIET_ACTIONS:
            return
        state.last_action = name
        self._line(state, when, "action", name)
        TaskLog(state.conv).on_action(name, when)

    def _on_slot(self, state: _Open, event: dict, when: datetime) -> None:
        conv, name, value = state.conv, event.get("name"), event.get("value")
        if name == "language" and value in LANGUAGES:
            conv.language = value
        elif name == "persona":
            conv.persona = value or None
        elif name == "customer_code" and value and value != conv.customer_code:
            conv.customer_code = str(value)[:8]
            state.known = self._known(conv.customer_code)
            for msg in conv.messages:  # what was said before identification, masked again
                msg.text = redact(msg.text, state.known)
        elif name == "rating" and value is not None:
            try:
                rating = int(float(value))
            except (TypeError, ValueError):
                return
            if 1 <= rating <= 5:
                conv.csat = rating
                TaskLog(conv).on_rating(rating)

    def _on_active_loop(self, state: _Open, event: dict, when: datetime) -> None:
        name = event.get("name") or None
        TaskLog(state.conv).on_form(state.conv.active_loop, name)
        state.conv.active_loop = name

    def _on_pause(self, state: _Open, event: dict, when: datetime) -> None:
        TaskLog(state.conv).on_handover(when)
        state.paused = True
        state.conv.handed_over = True
        state.conv.active_loop = None
        state.conv.last_was_fallback = False
        self._line(state, when, "event", "handover: the conversation is with a person")
        refresh_handover(self.db, state.conv)

    def _on_resume(self, state: _Open, event: dict, when: datetime) -> None:
        state.paused = False
        self._line(state, when, "event", "handover ended: the bot takes over again")
        refresh_handover(self.db, state.conv)


def outcome_of(conv: Conversation) -> str:
    """contained, handover or abandoned (definitions in the README, "KPI definitions")."""
    if conv.handed_over:
        return "handover"
    if conv.ended and (conv.active_loop or conv.last_was_fallback):
        return "abandoned"
    return "contained"


def _finish(conv: Conversation, when: datetime) -> None:
    conv.ended = True
    conv.ended_at = when
    conv.outcome = outcome_of(conv)
    TaskLog(conv).finish(when)


def known_of(code: str | None) -> Known | None:
    """The customer's own name, company and addresses, to be masked wherever they appear."""
    if not code:
        return None
    with session_scope() as db:
        return known_of_many(db, [code]).get(code, Known())


def known_of_many(db: Session, codes: Iterable[str]) -> dict[str, Known]:
    """`known_for` of each customer of `codes` found in `db`, in two queries."""
    from bot.crm.models import Customer

    codes = sorted(set(codes))
    if not codes:
        return {}
    return {c.customer_code: known_for(c) for c in db.execute(
        select(Customer).where(Customer.customer_code.in_(codes))
        .options(selectinload(Customer.supplies))).scalars()}


def known_for(c: Any) -> Known:
    """What the history knows of customer `c` (a `bot.crm.models.Customer` in a session): its
    names, supply addresses, e-mail, phone, tax code and IBAN."""
    names = [f"{c.first_name} {c.last_name}", f"{c.last_name} {c.first_name}",
             c.first_name, c.last_name]
    addresses = [s.address for s in c.supplies]
    values = [(v, label) for v, label in ((c.email, "[EMAIL]"), (c.phone, "[PHONE]"),
                                          (c.tax_code, "[TAX_CODE]"),
                                          (c.direct_debit_iban, "[IBAN]")) if v]
    return Known(names=tuple(n for n in names if n), addresses=tuple(addresses),
                 values=tuple(values))


def refresh_handover(db: Session, conv: Conversation) -> None:
    """The handover of this session, as the desk keeps it (reason, state, wait, handling)."""
    from bot.handover.models import Handover

    h = db.execute(select(Handover).where(Handover.conversation_id == conv.sender_id,
                                          Handover.created_at >= conv.started_at
                                          - timedelta(seconds=5),
                                          Handover.created_at <= conv.last_event_at
                                          + timedelta(minutes=5))
                   .order_by(Handover.id.desc()).limit(1)).scalar_one_or_none()
    if h is None:
        return
    conv.handed_over = True
    conv.handover_id = h.id
    conv.handover_reason = h.reason
    conv.handover_state = h.state
    conv.handover_wait_seconds = h.wait_seconds
    conv.handover_handling_seconds = h.handling_seconds
    conv.outcome = outcome_of(conv)


# ---- the stream ----------------------------------------------------------------------------


def apply_events(db: Session, events: Iterable[tuple[str, dict]]) -> int:
    """Apply (sender_id, event) pairs in order; the caller's transaction holds the result."""
    builder = LogBuilder(db)
    events = list(events)
    builder.prefetch(events)
    n = 0
    for sender, event in events:
        builder.apply(sender, event)
        n += 1
    return n


def _cursor(db: Session, source: str) -> StreamCursor:
    query = select(StreamCursor).where(StreamCursor.source == source)
    if db.bind.dialect.name == "postgresql":
        query = query.with_for_update()
    cursor = db.execute(query).scalar_one_or_none()
    if cursor is None:
        cursor = StreamCursor(source=source, position=0)
        db.add(cursor)
        db.flush()
    return cursor


# Conversations read in one query by `LogBuilder.prefetch` (a bound on the query's parameters).
PREFETCH_CHUNK = 200
# Events per transaction: on SQLite a batch holds the database's write lock while it is
# applied, and the desk's own writes (a customer cancelling their wait) queue behind it.
SYNC_BATCH = 100


def sync(limit: int = SYNC_BATCH, events_url: str | None = None) -> int:
    """Read one batch of new events into the log; the number of events read."""
    with session_scope() as db:
        cursor = _cursor(db, SOURCE)
        batch = event_stream.read_after(int(cursor.position), limit=limit, url=events_url)
        if not batch:
            return 0
        apply_events(db, ((e.sender_id, e.data) for e in batch))
        cursor.position = batch[-1].id
        cursor.updated_at = datetime.now(timezone.utc)
        return len(batch)


def sync_all(events_url: str | None = None) -> int:
    total = 0
    while True:
        n = sync(events_url=events_url)
        total += n
        if n == 0:
            return total


def sweep(now: datetime | None = None, idle_minutes: int | None = None) -> int:
    """End the sessions idle for `idle_minutes`, and bring the handover figures (wait, handling,
    final state) of sessions with an open handover up to date. The number of sessions ended."""
    now = now or datetime.now(timezone.utc)
    idle = timedelta(minutes=idle_minutes if idle_minutes is not None
                     else get_settings().conversation_idle_minutes)
    with session_scope() as db:
        ended = 0
        for conv in db.execute(select(Conversation).where(
                Conversation.ended.is_(False), Conversation.last_event_at < now - idle)).scalars():
            _finish(conv, conv.last_event_at)
            ended += 1
        for conv in db.execute(select(Conversation).where(
                Conversation.handover_state.in_(("queued", "assigned")))).scalars():
            refresh_handover(db, conv)
        return ended
