"""A CX lead's verdict on a Listen topic, stored on each of its messages of the period.

- an intent: every message gets the annotation the per-message annotation of the review
  console gives (`queries.curation.annotate`), so the NLU export (`bot.analytics.annotations`)
  includes them;
- `MISSING_SKILL`: every message gets a `MissingSkillMark` (the assistant cannot do this yet:
  not training data, so their annotations go);
- none: both are removed.

A message carries one verdict at a time: labelling replaces the other kind. Stored per message,
a verdict survives any recomputation of the topics, and new messages of the same topic arrive
unlabelled (the topic then shows how many of its messages are labelled).
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.analytics.models import MISSING_SKILL, MessageAnnotation, MissingSkillMark
from bot.analytics.queries.conversation import NotFound
from bot.analytics.queries.curation import annotate
from bot.analytics.queries.filters import domain_intents
from bot.analytics.topics import Message, topic_messages


def check_label(label: str | None) -> str | None:
    """An intent of the domain, `MISSING_SKILL`, or None (clear); ValueError otherwise."""
    if label in (None, ""):
        return None
    label = str(label).strip()
    if label != MISSING_SKILL and label not in domain_intents():
        raise ValueError(f"label: an intent of the domain or {MISSING_SKILL!r}, got {label!r}")
    return label


def label_topic(db: Session, start: date, end: date, language: str, topic: str,
                label: str | None, user_id: int | None = None) -> dict:
    """Give the topic's messages of the period `label` (see the module's docstring); NotFound
    when the topic is not among the period's topics any more."""
    label = check_label(label)
    return label_messages(db, topic, topic_messages(db, start, end, language, topic), label,
                          user_id)


def label_messages(db: Session, topic: str, messages: list[Message] | None, label: str | None,
                   user_id: int | None = None) -> dict:
    """`label_topic` once the topic's messages are known (`topics.members`; None: the topic is
    gone, NotFound); `label` already checked (`check_label`)."""
    if messages is None:
        raise NotFound(f"no topic {topic} in this period and language any more; reload")
    ids = [m.id for m in messages]
    for part in _chunks(ids):
        if label != MISSING_SKILL:
            db.execute(delete(MissingSkillMark).where(MissingSkillMark.message_id.in_(part)),
                       execution_options={"synchronize_session": False})
        if label is None or label == MISSING_SKILL:
            db.execute(delete(MessageAnnotation).where(MessageAnnotation.message_id.in_(part)),
                       execution_options={"synchronize_session": False})
    if label == MISSING_SKILL:
        now = datetime.now(timezone.utc)
        for part in _chunks(ids):
            marked = set(db.execute(select(MissingSkillMark.message_id)
                                    .where(MissingSkillMark.message_id.in_(part))).scalars())
            db.add_all(MissingSkillMark(message_id=i, user_id=user_id, at=now)
                       for i in part if i not in marked)
    elif label is not None:
        for m in messages:
            annotate(db, m.conversation_id, m.id, label, user_id)
    db.flush()
    return {"topic": topic, "label": label, "messages": len(ids)}


def _chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    """`ids` in pieces small enough for one statement's parameters on any SQLite."""
    return [ids[i:i + size] for i in range(0, len(ids), size)]
