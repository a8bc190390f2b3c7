"""The conversation log: one record per Rasa conversation session, built from the event stream.

Every text stored here is already masked (`bot.analytics.redact`): the console and its exports
never hold names, e-mails, phone numbers, IBANs, tax codes, customer codes or street addresses.
The original text stays only in Rasa's tracker store, where `admin` can reveal it (audited).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import relationship

from bot.persistence.types import Base, UTCDateTime, utcnow

OUTCOMES = ("contained", "handover", "abandoned")
# A self-care task's outcome, and a conversation's resolution (from its tasks).
TASK_OUTCOMES = ("resolved", "not_resolved", "handed_over")
# Why a task was not resolved, strongest first: a task keeps the strongest reason it met.
NOT_RESOLVED_REASONS = ("wrong_skill", "error_reply", "silent_turn", "fallback_end",
                        "form_abandoned", "form_cancelled", "unfinished")
# Silent failures, flagged on a transcript line: a customer message the bot left without a
# reply, an error reply, a customer message answered by the wrong skill.
FAILURES = ("silent_turn", "error_reply", "wrong_skill")
MISUNDERSTOOD = "misunderstood"
MISSING_SKILL = "missing skill"
PREDEFINED_TAGS = (MISUNDERSTOOD, "wrong answer", MISSING_SKILL, "great")

# Journey stages of ../shared/intents.md: every intent maps to one stage.
STAGES = ("information", "self_care", "feedback", "conversation")
STAGE_LABELS = {"information": "information & purchase", "self_care": "use & self-care",
                "feedback": "feedback & loyalty", "conversation": "conversation"}
_STAGE_OF = {
    "information": ("contract_info", "move_home"),
    "self_care": ("check_bill", "explain_bill", "pay_bill", "submit_meter_reading",
                  "report_outage", "ticket_status", "activate_ebill", "update_contact",
                  "setup_direct_debit", "request_callback"),
    "feedback": ("file_complaint", "give_feedback"),
}
INTENT_STAGE = {intent: stage for stage, intents in _STAGE_OF.items() for intent in intents}


def stage_of(intent: str) -> str:
    return INTENT_STAGE.get(intent, "conversation")


class Conversation(Base):
    """One conversation session (Rasa's `session_started` opens a new one)."""

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("sender_id", "session_start", name="uq_conversation_session"),
        Index("ix_conversation_started", "started_at"),
        Index("ix_conversation_customer", "customer_code", "started_at"),
    )

    id = Column(Integer, primary_key=True)
    sender_id = Column(String(128), nullable=False, index=True)
    session_start = Column(Float, nullable=False)  # the Rasa timestamp that opened it
    customer_code = Column(String(8))
    channel = Column(String(32), nullable=False, default="")
    language = Column(String(2), nullable=False, default="it")
    persona = Column(String(16))
    outcome = Column(String(16), nullable=False, default="contained", index=True)
    resolution = Column(String(16), index=True)  # from the tasks (None: no task)
    failures = Column(Integer, nullable=False, default=0)  # lines flagged with a FAILURES kind
    ended = Column(Boolean, nullable=False, default=False)
    turns = Column(Integer, nullable=False, default=0)  # customer messages
    fallbacks = Column(Integer, nullable=False, default=0)  # messages the bot did not understand
    active_loop = Column(String(64))  # the form still open at the last event
    last_was_fallback = Column(Boolean, nullable=False, default=False)
    handed_over = Column(Boolean, nullable=False, default=False)
    handover_id = Column(Integer)
    handover_reason = Column(String(32))
    handover_state = Column(String(16))
    handover_wait_seconds = Column(Integer)
    handover_handling_seconds = Column(Integer)
    csat = Column(Integer)
    csat_comment = Column(Text)
    started_at = Column(UTCDateTime, nullable=False)
    last_event_at = Column(UTCDateTime, nullable=False)
    ended_at = Column(UTCDateTime)
    reviewed = Column(Boolean, nullable=False, default=False)
    reviewed_by = Column(Integer, ForeignKey("desk_users.id", ondelete="SET NULL"))

    messages = relationship("ConversationMessage", back_populates="conversation",
                            cascade="all, delete-orphan", order_by="ConversationMessage.id",
                            passive_deletes=True)
    intents = relationship("ConversationIntent", cascade="all, delete-orphan",
                           passive_deletes=True)
    tags = relationship("ConversationTag", cascade="all, delete-orphan", passive_deletes=True,
                        order_by="ConversationTag.tag")
    notes = relationship("ConversationNote", cascade="all, delete-orphan", passive_deletes=True,
                         order_by="ConversationNote.id")
    tasks = relationship("ConversationTask", cascade="all, delete-orphan", passive_deletes=True,
                         order_by="ConversationTask.id")


class ConversationMessage(Base):
    """A line of the transcript: a customer, bot or agent message, an action, an event."""

    __tablename__ = "conversation_messages"

    id = Column(Integer, primary_key=True)
    conversation_id = Column(Integer, ForeignKey("conversations.id", ondelete="CASCADE"),
                             nullable=False, index=True)
    at = Column(UTCDateTime, nullable=False)
    sender = Column(String(16), nullable=False)  # customer, bot, agent, action, event
    text = Column(Text, nullable=False, default="")  # masked
    intent = Column(String(64))
    confidence = Column(Float)
    entities = Column(Text)  # JSON list of {entity, value (masked)}
    agent = Column(String(100))  # the agent's display name, for agent messages
    fallback = Column(Boolean, nullable=False, default=False)
    handover = Column(Boolean, nullable=False, default=False)  # said while with a person
    response = Column(String(64))  # the domain response a bot line came from (utter_action)
    failure = Column(String(16), index=True)  # one of FAILURES, when the line shows one

    conversation = relationship("Conversation", back_populates="messages")
    annotation = relationship("MessageAnnotation", uselist=False, cascade="all, delete-orphan",
                              passive_deletes=True)
    missing_skill = relationship("MissingSkillMark", uselist=False,
                                 cascade="all, delete-orphan", passive_deletes=True)


class ConversationIntent(Base):
    __tablename__ = "conversation_intents"
    __table_args__ = (UniqueConstraint("conversation_id", "intent", name="uq_conversation_intent"),
                      Index("ix_conversation_intent", "intent"),
                      Index("ix_conversation_stage", "stage"))

    id = Column(Integer, primary_key=True)
    conversation_id = Column(Integer, ForeignKey("conversations.id", ondelete="CASCADE"),
                             nullable=False, index=True)
    intent = Column(String(64), nullable=False)
    stage = Column(String(16), nullable=False)
    count = Column(Integer, nullable=False, default=1)


class ConversationTask(Base):
    """A self-care task the bot attempted in a conversation, and what became of it
    (`bot.analytics.tasks`): `resolved` when the skill marked the reply that did its job,
    `handed_over`, or `not_resolved` with the reason. Whether a later contact withdrew the
    resolution is computed when asked (`bot.analytics.resolution`): it can arrive any time."""

    __tablename__ = "conversation_tasks"
    __table_args__ = (Index("ix_conversation_task_skill", "skill", "started_at"),
                      Index("ix_conversation_task_reference", "reference"))

    id = Column(Integer, primary_key=True)
    conversation_id = Column(Integer, ForeignKey("conversations.id", ondelete="CASCADE"),
                             nullable=False, index=True)
    skill = Column(String(64), nullable=False)  # the skill intent (bot.skills.TASK_SKILLS)
    started_at = Column(UTCDateTime, nullable=False)
    ended_at = Column(UTCDateTime)  # when resolved, handed over, or given up
    last_at = Column(UTCDateTime, nullable=False)  # the latest event that concerned it
    outcome = Column(String(16), nullable=False, default="not_resolved")  # TASK_OUTCOMES
    reason = Column(String(16))  # NOT_RESOLVED_REASONS, for a task not resolved
    confirmed = Column(Boolean, nullable=False, default=False)
    confirmed_by = Column(String(16))  # "thanks", "nothing_else" or "csat"
    reference = Column(String(32))  # the ticket id or bill number, when known
    turns = Column(Integer, nullable=False, default=0)  # customer messages after the request
    replied = Column(Boolean, nullable=False, default=False)  # the bot said something since


class ConversationTag(Base):
    __tablename__ = "conversation_tags"
    __table_args__ = (UniqueConstraint("conversation_id", "tag", name="uq_conversation_tag"),
                      Index("ix_conversation_tag", "tag"))

    id = Column(Integer, primary_key=True)
    conversation_id = Column(Integer, ForeignKey("conversations.id", ondelete="CASCADE"),
                             nullable=False, index=True)
    tag = Column(String(40), nullable=False)
    user_id = Column(Integer, ForeignKey("desk_users.id", ondelete="SET NULL"))
    at = Column(UTCDateTime, nullable=False, default=utcnow)


class ConversationNote(Base):
    __tablename__ = "conversation_notes"

    id = Column(Integer, primary_key=True)
    conversation_id = Column(Integer, ForeignKey("conversations.id", ondelete="CASCADE"),
                             nullable=False, index=True)
    user_id = Column(Integer, ForeignKey("desk_users.id", ondelete="SET NULL"))
    author = Column(String(100), nullable=False, default="")
    text = Column(Text, nullable=False)  # masked like the transcript
    at = Column(UTCDateTime, nullable=False, default=utcnow)


class MessageAnnotation(Base):
    """A CX lead's correction: the intent a customer message should have had."""

    __tablename__ = "message_annotations"

    id = Column(Integer, primary_key=True)
    message_id = Column(Integer, ForeignKey("conversation_messages.id", ondelete="CASCADE"),
                        nullable=False, unique=True)
    intent = Column(String(64), nullable=False)
    language = Column(String(2), nullable=False)
    user_id = Column(Integer, ForeignKey("desk_users.id", ondelete="SET NULL"))
    at = Column(UTCDateTime, nullable=False, default=utcnow)


class MissingSkillMark(Base):
    """A CX lead's verdict from Listen (`bot.analytics.topics`): this customer message asks for
    something the assistant cannot do yet. A message has either this or an annotation."""

    __tablename__ = "missing_skill_marks"

    id = Column(Integer, primary_key=True)
    message_id = Column(Integer, ForeignKey("conversation_messages.id", ondelete="CASCADE"),
                        nullable=False, unique=True)
    user_id = Column(Integer, ForeignKey("desk_users.id", ondelete="SET NULL"))
    at = Column(UTCDateTime, nullable=False, default=utcnow)


class StreamCursor(Base):
    """How far the log has read an event stream; moved in the same transaction as the records
    it produced, so a restart neither loses nor repeats an event."""

    __tablename__ = "stream_cursors"

    source = Column(String(64), primary_key=True)
    position = Column(BigInteger, nullable=False, default=0)
    updated_at = Column(UTCDateTime, nullable=False, default=utcnow)


class RevealAudit(Base):
    """Every time an admin reveals a conversation's personal data."""

    __tablename__ = "reveal_audit"

    id = Column(Integer, primary_key=True)
    conversation_id = Column(Integer, nullable=False, index=True)
    user_id = Column(Integer, ForeignKey("desk_users.id", ondelete="SET NULL"))
    username = Column(String(64), nullable=False)
    at = Column(UTCDateTime, nullable=False, default=utcnow)
    reason = Column(String(200), nullable=False, default="")


class ErasureRecord(Base):
    """That a customer's data was erased, and how much: never whose, nor the data itself."""

    __tablename__ = "erasure_records"

    id = Column(Integer, primary_key=True)
    at = Column(UTCDateTime, nullable=False, default=utcnow)
    kind = Column(String(16), nullable=False)  # "customer" (erase-customer) or "retention" (purge)
    reference = Column(String(100), nullable=False, default="")  # e.g. the request's ticket
    requested_by = Column(String(64), nullable=False, default="")
    conversations = Column(Integer, nullable=False, default=0)
    tracker_events = Column(Integer, nullable=False, default=0)
    history_rows = Column(Integer, nullable=False, default=0)
