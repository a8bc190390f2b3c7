"""The CX lead's work on a conversation: tags, notes (masked like the transcript), the reviewed
flag, and the intent a customer message should have had (annotations)."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.analytics.models import (
    Conversation,
    ConversationMessage,
    ConversationNote,
    ConversationTag,
    MessageAnnotation,
    MissingSkillMark,
)
from bot.analytics.queries.conversation import NotFound, get_row, iso
from bot.analytics.queries.filters import MAX_TAG, domain_intents
from bot.analytics.redact import redact

MAX_NOTE = 4000


def clean_tag(tag: str | None) -> str:
    tag = " ".join(str(tag or "").split())
    if not tag:
        raise ValueError("tag: empty")
    if len(tag) > MAX_TAG:
        raise ValueError(f"tag: at most {MAX_TAG} characters")
    return tag


def _tags(db: Session, conversation_id: int) -> list[str]:
    return list(db.execute(select(ConversationTag.tag)
                           .where(ConversationTag.conversation_id == conversation_id)
                           .order_by(ConversationTag.tag)).scalars())


def add_tag(db: Session, conversation_id: int, tag: str, user_id: int | None = None
            ) -> list[str]:
    """Tag the conversation (free text, trimmed, at most 40 characters); its tags."""
    tag = clean_tag(tag)
    get_row(db, conversation_id)
    if tag not in _tags(db, conversation_id):
        db.add(ConversationTag(conversation_id=conversation_id, tag=tag, user_id=user_id,
                               at=datetime.now(timezone.utc)))
        db.flush()
    return _tags(db, conversation_id)


def remove_tag(db: Session, conversation_id: int, tag: str) -> list[str]:
    get_row(db, conversation_id)
    db.execute(delete(ConversationTag).where(ConversationTag.conversation_id == conversation_id,
                                             ConversationTag.tag == clean_tag(tag)))
    return _tags(db, conversation_id)


def add_note(db: Session, conversation_id: int, text: str, author: str = "",
             user_id: int | None = None) -> dict:
    """A note on the conversation, masked like the transcript before it is stored."""
    text = str(text or "").strip()
    if not text:
        raise ValueError("note: empty")
    if len(text) > MAX_NOTE:
        raise ValueError(f"note: at most {MAX_NOTE} characters")
    get_row(db, conversation_id)
    note = ConversationNote(conversation_id=conversation_id, text=redact(text),
                            author=(author or "")[:100], user_id=user_id,
                            at=datetime.now(timezone.utc))
    db.add(note)
    db.flush()
    return {"id": note.id, "author": note.author, "text": note.text, "at": iso(note.at)}


def set_reviewed(db: Session, conversation_id: int, reviewed: bool,
                 user_id: int | None = None) -> bool:
    conv = get_row(db, conversation_id)
    conv.reviewed = bool(reviewed)
    conv.reviewed_by = user_id if reviewed else None
    db.flush()
    return conv.reviewed


def _customer_message(db: Session, conversation_id: int, message_id: int
                      ) -> tuple[Conversation, ConversationMessage]:
    conv = get_row(db, conversation_id)
    msg = db.get(ConversationMessage, message_id)
    if msg is None or msg.conversation_id != conv.id:
        raise NotFound(f"no message {message_id} in conversation {conversation_id}")
    if msg.sender != "customer":
        raise ValueError("only the customer's messages can be annotated")
    return conv, msg


def annotate(db: Session, conversation_id: int, message_id: int, intent: str,
             user_id: int | None = None) -> dict:
    """The intent a customer message should have had (one of the domain's), in the language of
    the conversation; replaces an earlier annotation of that message, and a Listen mark of it
    as a missing skill."""
    intent = str(intent or "").strip()
    if intent not in domain_intents():
        raise ValueError(f"intent: one of the domain's intents, got {intent!r}")
    conv, msg = _customer_message(db, conversation_id, message_id)
    # one verdict at a time: an intent it should have had is not a missing skill (Listen)
    db.execute(delete(MissingSkillMark).where(MissingSkillMark.message_id == msg.id),
               execution_options={"synchronize_session": False})
    row = db.execute(select(MessageAnnotation).where(MessageAnnotation.message_id == msg.id)
                     ).scalar_one_or_none()
    if row is None:
        row = MessageAnnotation(message_id=msg.id)
        db.add(row)
    row.intent, row.language, row.user_id = intent, conv.language, user_id
    row.at = datetime.now(timezone.utc)
    db.flush()
    return {"message_id": msg.id, "intent": row.intent, "language": row.language,
            "at": iso(row.at)}


def remove_annotation(db: Session, conversation_id: int, message_id: int) -> bool:
    """True when there was an annotation to remove."""
    _, msg = _customer_message(db, conversation_id, message_id)
    return db.execute(delete(MessageAnnotation).where(MessageAnnotation.message_id == msg.id)
                      ).rowcount > 0
