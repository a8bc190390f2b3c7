"""One conversation of the log: its record, transcript lines (with their annotations), intents,
tags and notes, as the console shows it."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.analytics.models import (
    STAGE_LABELS,
    Conversation,
    ConversationIntent,
    ConversationMessage,
    ConversationNote,
    ConversationTag,
    ConversationTask,
    MessageAnnotation,
)


class NotFound(LookupError):
    """No such conversation or message."""


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def user_names(db: Session, ids: Iterable[int | None]) -> dict[int, str]:
    from bot.handover.models import DeskUser

    ids = {i for i in ids if i}
    if not ids:
        return {}
    return dict(db.execute(select(DeskUser.id, DeskUser.display_name)
                           .where(DeskUser.id.in_(ids))).all())


def get_row(db: Session, conversation_id: int) -> Conversation:
    conv = db.get(Conversation, conversation_id)
    if conv is None:
        raise NotFound(f"no conversation {conversation_id}")
    return conv


def get_conversation(db: Session, conversation_id: int) -> dict | None:
    """The record, the transcript lines (with their annotations), intents, tags and notes."""
    conv = db.get(Conversation, conversation_id)
    if conv is None:
        return None
    lines = db.execute(select(ConversationMessage, MessageAnnotation)
                       .outerjoin(MessageAnnotation,
                                  MessageAnnotation.message_id == ConversationMessage.id)
                       .where(ConversationMessage.conversation_id == conv.id)
                       .order_by(ConversationMessage.id)).all()
    tags = db.execute(select(ConversationTag).where(ConversationTag.conversation_id == conv.id)
                      .order_by(ConversationTag.tag)).scalars().all()
    notes = db.execute(select(ConversationNote).where(ConversationNote.conversation_id == conv.id)
                       .order_by(ConversationNote.id)).scalars().all()
    intents = db.execute(select(ConversationIntent)
                         .where(ConversationIntent.conversation_id == conv.id)
                         .order_by(ConversationIntent.count.desc(), ConversationIntent.id)
                         ).scalars().all()
    users = user_names(db, [conv.reviewed_by] + [t.user_id for t in tags]
                   + [a.user_id for _, a in lines if a is not None])
    record = {c: getattr(conv, c) for c in (
        "id", "customer_code", "channel", "language", "persona", "outcome", "ended", "turns",
        "fallbacks", "active_loop", "handed_over", "handover_reason", "handover_state",
        "handover_wait_seconds", "handover_handling_seconds", "csat", "csat_comment",
        "reviewed", "resolution", "failures")}
    record.update(started_at=iso(conv.started_at), last_event_at=iso(conv.last_event_at),
                  ended_at=iso(conv.ended_at), reviewed_by=users.get(conv.reviewed_by))
    record["intents"] = [{"intent": i.intent, "stage": i.stage,
                          "stage_label": STAGE_LABELS.get(i.stage, i.stage), "count": i.count}
                         for i in intents]
    record["messages"] = [_message(m, a, users) for m, a in lines]
    tasks = db.execute(select(ConversationTask).where(ConversationTask.conversation_id == conv.id)
                       .order_by(ConversationTask.id)).scalars().all()
    record["tasks"] = [{"skill": t.skill, "outcome": t.outcome, "reason": t.reason,
                        "confirmed": bool(t.confirmed), "confirmed_by": t.confirmed_by,
                        "reference": t.reference, "started_at": iso(t.started_at),
                        "ended_at": iso(t.ended_at)} for t in tasks]
    record["tags"] = [{"tag": t.tag, "by": users.get(t.user_id), "at": iso(t.at)}
                      for t in tags]
    record["notes"] = [{"id": n.id, "author": n.author, "text": n.text, "at": iso(n.at)}
                       for n in notes]
    return record


def _message(m: ConversationMessage, a: MessageAnnotation | None, users: dict) -> dict:
    return {"id": m.id, "at": iso(m.at), "sender": m.sender, "text": m.text,
            "intent": m.intent, "confidence": m.confidence,
            "entities": json.loads(m.entities) if m.entities else [], "agent": m.agent,
            "fallback": bool(m.fallback), "handover": bool(m.handover),
            "failure": m.failure, "response": m.response,
            "annotation": ({"intent": a.intent, "language": a.language,
                            "by": users.get(a.user_id), "at": iso(a.at)} if a else None)}
