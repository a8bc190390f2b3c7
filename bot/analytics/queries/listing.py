"""The console's list of conversations: the filtered, sorted, paginated page, and every
matching conversation for the exports (only conversations with a customer turn)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterator

from sqlalchemy import func, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Session

from bot.analytics.models import (
    Conversation,
    ConversationIntent,
    ConversationMessage,
    ConversationTag,
)
from bot.analytics.queries.conversation import iso
from bot.analytics.queries.filters import ANY_FAILURE, Filters, parse_sort
from bot.analytics.queries.search import search_condition
from bot.settings import local_zone

MAX_PER_PAGE = 500


@dataclass
class Page:
    rows: list[dict]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    def as_dict(self) -> dict:
        return {**asdict(self), "pages": self.pages}


def rome_day_start(day: date) -> datetime:
    """The first instant of a Europe/Rome calendar day, in UTC."""
    return datetime.combine(day, time(0, 0), local_zone()).astimezone(timezone.utc)


def _conditions(db: Session, f: Filters) -> list:
    c = [Conversation.turns > 0]
    if f.date_from:
        c.append(Conversation.started_at >= rome_day_start(f.date_from))
    if f.date_to:
        c.append(Conversation.started_at < rome_day_start(f.date_to + timedelta(days=1)))
    for name in ("channel", "language", "persona", "outcome", "csat", "customer_code",
                 "resolution"):
        value = getattr(f, name)
        if value is not None:
            c.append(getattr(Conversation, name) == value)
    if f.reviewed is not None:
        c.append(Conversation.reviewed.is_(f.reviewed))
    # IN (indexed sub-select): SQLite starts from the index of a selective filter
    if f.intent:
        c.append(Conversation.id.in_(select(ConversationIntent.conversation_id)
                                     .where(ConversationIntent.intent == f.intent)))
    if f.stage:
        c.append(Conversation.id.in_(select(ConversationIntent.conversation_id)
                                     .where(ConversationIntent.stage == f.stage)))
    if f.failure == ANY_FAILURE:
        c.append(Conversation.failures > 0)
    elif f.failure:
        c.append(Conversation.id.in_(select(ConversationMessage.conversation_id)
                                     .where(ConversationMessage.failure == f.failure)))
    if f.tag:
        c.append(Conversation.id.in_(select(ConversationTag.conversation_id)
                                     .where(ConversationTag.tag == f.tag)))
    if f.q:
        condition = search_condition(db, f.q)
        if condition is not None:
            c.append(condition)
    return c


def _order(sort: str | None) -> list:
    key, descending = parse_sort(sort)
    column = getattr(Conversation, key)
    order = [Conversation.csat.is_(None)] if key == "csat" else []  # unrated ones last
    order.append(column.desc() if descending else column.asc())
    order.append(Conversation.id.desc() if descending else Conversation.id.asc())
    return order


LIST_COLUMNS = (Conversation.id, Conversation.started_at, Conversation.ended_at,
                Conversation.last_event_at, Conversation.channel, Conversation.language,
                Conversation.persona, Conversation.customer_code, Conversation.outcome,
                Conversation.turns, Conversation.fallbacks, Conversation.csat,
                Conversation.csat_comment, Conversation.handed_over,
                Conversation.handover_reason, Conversation.handover_state,
                Conversation.reviewed, Conversation.ended, Conversation.resolution,
                Conversation.failures)


def _list_row(r: RowMapping) -> dict:
    row = dict(r)
    for key in ("started_at", "ended_at", "last_event_at"):
        row[key] = iso(row[key])
    row["handed_over"], row["reviewed"], row["ended"] = (bool(row["handed_over"]),
                                                         bool(row["reviewed"]),
                                                         bool(row["ended"]))
    row["intents"], row["stages"], row["tags"] = [], [], []
    return row


def _attach(db: Session, rows: list[dict]) -> list[dict]:
    """The rows' intents (most frequent first) and tags: one query each."""
    by_id = {r["id"]: r for r in rows}
    if not by_id:
        return rows
    for cid, intent, stage in db.execute(
            select(ConversationIntent.conversation_id, ConversationIntent.intent,
                   ConversationIntent.stage)
            .where(ConversationIntent.conversation_id.in_(list(by_id)))
            .order_by(ConversationIntent.conversation_id, ConversationIntent.count.desc(),
                      ConversationIntent.id)):
        row = by_id[cid]
        row["intents"].append(intent)
        if stage not in row["stages"]:
            row["stages"].append(stage)
    for cid, tag in db.execute(
            select(ConversationTag.conversation_id, ConversationTag.tag)
            .where(ConversationTag.conversation_id.in_(list(by_id)))
            .order_by(ConversationTag.conversation_id, ConversationTag.tag)):
        by_id[cid]["tags"].append(tag)
    return rows


def list_conversations(db: Session, filters: Filters, sort: str = "-started_at", page: int = 1,
                       per_page: int = 50) -> Page:
    """One page of the conversations matching `filters` (only those with a customer turn),
    and how many match in all: four queries whatever the page size."""
    if not isinstance(page, int) or page < 1:
        raise ValueError("page: a number from 1")
    if not isinstance(per_page, int) or not 1 <= per_page <= MAX_PER_PAGE:
        raise ValueError(f"per_page: a number from 1 to {MAX_PER_PAGE}")
    order = _order(sort)
    conditions = _conditions(db, filters)
    total = db.execute(select(func.count()).select_from(Conversation)
                       .where(*conditions)).scalar_one()
    rows = [_list_row(r) for r in db.execute(
        select(*LIST_COLUMNS).where(*conditions).order_by(*order)
        .limit(per_page).offset((page - 1) * per_page)).mappings()]
    return Page(rows=_attach(db, rows), total=int(total), page=page, per_page=per_page)


def iter_conversations(db: Session, filters: Filters, sort: str = "-started_at",
                       chunk: int = 1000) -> Iterator[dict]:
    """Every conversation matching `filters`, in order, for the exports (streamed in chunks)."""
    order = _order(sort)
    result = db.execute(select(*LIST_COLUMNS).where(*_conditions(db, filters)).order_by(*order)
                        .execution_options(yield_per=chunk))
    for part in result.mappings().partitions(chunk):
        yield from _attach(db, [_list_row(r) for r in part])
