"""Listen: what customers ask that the assistant cannot do yet, grouped into topics.

What goes in (`listened`): the customer messages said to the bot (not to a person during a
handover) in one language (the conversation's), in the period or in the previous period of the
same length, that

- fell to the fallback (`nlu_fallback`), or
- were classified `out_of_scope`, or
- belong to a conversation a CX lead tagged `misunderstood` or `missing skill`, unless they were
  classified as one of `ROUTINE_INTENTS` (a greeting or a "thank you" asks for nothing), or
- were marked as asking for a missing skill from Listen itself (so a verdict stays visible).

A message belongs to the period of its own time (Europe/Rome days, both ends included, as the
KPIs). The messages of both periods are grouped together (`bot.analytics.grouping`), so a
topic's size in the previous period is counted with the same grouping as its size now:

- **size**: the topic's messages in the period; **previous size**: in the previous period;
  **change** = size - previous size; the trend is `new` when the previous size is 0;
- a topic is shown when its size is at least `MIN_TOPIC_SIZE`; every other message of the period
  (a group smaller than that, or a text the grouping left alone) is counted in **other**;
- its **name** is its most central message of the period (the one most similar to the topic's
  centre), its **examples** the `EXAMPLES` most central distinct texts, with their
  conversations. Texts are the log's, masked when stored (`bot.analytics.redact`);
- its **id** is derived from the language, the normalised name and the ids of its messages of
  the period: recomputing over the same messages gives the same id, and any change of what the
  topic holds gives another, so a label is never given to messages the CX lead did not see
  (`bot.analytics.topic_labels` answers "reload"). Labels are stored per message, so they
  survive any recomputation; a topic shows the label most of its labelled messages carry.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from bot.analytics.grouping import NO_GROUP, group_texts, normalise
from bot.analytics.ingest import OUT_OF_SCOPE_INTENT
from bot.analytics.kpis import check_period, previous_period, utc_bounds
from bot.analytics.models import (
    MISSING_SKILL,
    MISUNDERSTOOD,
    Conversation,
    ConversationMessage,
    ConversationTag,
    MessageAnnotation,
    MissingSkillMark,
)
from bot.analytics.queries.conversation import iso
from bot.language import LANGUAGES

MIN_TOPIC_SIZE = 3
EXAMPLES = 5
LISTEN_TAGS = (MISUNDERSTOOD, MISSING_SKILL)
# Intents that ask for nothing: left out of a tagged conversation's messages.
ROUTINE_INTENTS = ("greet", "goodbye", "thank_you", "affirm", "deny", "bot_challenge", "help",
                   "inform", "change_language", "give_feedback", "request_human")


@dataclass
class Message:
    id: int
    conversation_id: int
    text: str
    at: datetime
    current: bool  # in the period (else in the previous one)
    label: str | None  # the annotated intent, MISSING_SKILL, or None

    def example(self) -> dict:
        return {"message_id": self.id, "conversation_id": self.conversation_id,
                "text": self.text, "at": iso(self.at)}


@dataclass
class Topic:
    id: str
    name: str
    messages: list[Message]  # of the period, most central first
    previous_size: int
    examples: list[Message] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.messages)

    def labels(self) -> list[dict]:
        counts = Counter(m.label for m in self.messages if m.label)
        return [{"label": label, "messages": n} for label, n in
                sorted(counts.items(), key=lambda item: (-item[1], item[0]))]

    def as_dict(self) -> dict:
        labels = self.labels()
        return {"id": self.id, "name": self.name, "size": self.size,
                "previous_size": self.previous_size, "change": self.size - self.previous_size,
                "trend": trend(self.size, self.previous_size),
                "label": labels[0]["label"] if labels else None,
                "labelled": sum(item["messages"] for item in labels), "labels": labels,
                "examples": [m.example() for m in self.examples]}


def trend(size: int, previous_size: int) -> str:
    if previous_size == 0:
        return "new"
    return "up" if size > previous_size else "down" if size < previous_size else "same"


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise ValueError(f"language: one of {', '.join(LANGUAGES)}")
    return language


def listened(db: Session, start: date, end: date, language: str) -> list[Message]:
    """The messages Listen groups (see the module's docstring), of the period and the previous
    one, in the order they were written."""
    check_period(start, end)
    check_language(language)
    previous_start, _ = previous_period(start, end)
    low, _ = utc_bounds(previous_start, previous_start)
    middle, high = utc_bounds(start, end)
    m = ConversationMessage
    tagged = select(ConversationTag.conversation_id).where(ConversationTag.tag.in_(LISTEN_TAGS))
    rows = db.execute(
        select(m.id, m.conversation_id, m.text, m.at, MessageAnnotation.intent,
               MissingSkillMark.id)
        .join(Conversation, Conversation.id == m.conversation_id)
        .outerjoin(MessageAnnotation, MessageAnnotation.message_id == m.id)
        .outerjoin(MissingSkillMark, MissingSkillMark.message_id == m.id)
        .where(m.sender == "customer", m.handover.is_(False), Conversation.language == language,
               m.at >= low, m.at < high,
               or_(m.fallback.is_(True), m.intent == OUT_OF_SCOPE_INTENT,
                   MissingSkillMark.id.isnot(None),
                   and_(m.conversation_id.in_(tagged),
                        or_(m.intent.is_(None), m.intent.notin_(ROUTINE_INTENTS)))))
        .order_by(m.at, m.id)).all()
    return [Message(id=r[0], conversation_id=r[1], text=r[2] or "", at=r[3],
                    current=r[3] >= middle, label=MISSING_SKILL if r[5] else r[4])
            for r in rows]


def topic_id(language: str, name: str, message_ids: list[int]) -> str:
    """The same for the same messages of the period, another as soon as they change."""
    members = ",".join(str(i) for i in sorted(message_ids))
    return hashlib.sha1(f"{language}\n{normalise(name)}\n{members}".encode()).hexdigest()[:12]


def find_topics(messages: list[Message], language: str) -> tuple[list[Topic], list[Message]]:
    """The topics of the period's messages, largest first, and the period's other messages."""
    grouping = group_texts([m.text for m in messages])
    members: dict[int, list[int]] = {}
    for i, label in enumerate(grouping.labels):
        if label != NO_GROUP:
            members.setdefault(int(label), []).append(i)
    topics: list[Topic] = []
    grouped: set[int] = set()
    for indexes in members.values():
        now = [i for i in indexes if messages[i].current]
        if len(now) < MIN_TOPIC_SIZE:
            continue
        now.sort(key=lambda i: (-grouping.centrality[i], messages[i].id))
        grouped.update(now)
        ordered = [messages[i] for i in now]
        topic = Topic(id=topic_id(language, ordered[0].text, [m.id for m in ordered]),
                      name=ordered[0].text,
                      messages=ordered, previous_size=len(indexes) - len(now))
        topic.examples = _distinct(ordered)[:EXAMPLES]
        topics.append(topic)
    topics.sort(key=lambda t: (-t.size, t.id))
    other = [m for i, m in enumerate(messages) if m.current and i not in grouped]
    return topics, other


def _distinct(messages: list[Message]) -> list[Message]:
    seen: set[str] = set()
    kept = []
    for m in messages:
        key = normalise(m.text)
        if key not in seen:
            seen.add(key)
            kept.append(m)
    return kept


def report(db: Session, start: date, end: date, language: str) -> dict:
    """Listen for the period and language: the topics with size, trend, label and examples."""
    return summary(listened(db, start, end, language), start, end, language)


def summary(messages: list[Message], start: date, end: date, language: str) -> dict:
    """`report` of messages already read (`listened`): the grouping needs no database."""
    topics, other = find_topics(messages, language)
    previous_start, previous_end = previous_period(start, end)
    current = sum(1 for m in messages if m.current)
    return {"from": start.isoformat(), "to": end.isoformat(),
            "previous": {"from": previous_start.isoformat(), "to": previous_end.isoformat()},
            "language": language, "messages": current,
            "previous_messages": len(messages) - current,
            "min_topic_size": MIN_TOPIC_SIZE,
            "topics": [t.as_dict() for t in topics],
            "other": {"size": len(other),
                      "examples": [m.example() for m in _distinct(other)[:EXAMPLES]]}}


def topic_messages(db: Session, start: date, end: date, language: str,
                   wanted: str) -> list[Message] | None:
    """The period's messages of topic `wanted`, recomputed; None when no such topic (the
    messages changed since it was shown)."""
    return members(listened(db, start, end, language), language, wanted)


def members(messages: list[Message], language: str, wanted: str) -> list[Message] | None:
    """`topic_messages` of messages already read (`listened`)."""
    topics, _ = find_topics(messages, language)
    return next((t.messages for t in topics if t.id == wanted), None)
