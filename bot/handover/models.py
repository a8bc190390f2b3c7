"""Desk users and sessions, handovers and their state transitions."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import relationship

from bot.persistence.types import Base, UTCDateTime, utcnow

ROLES = ("agent", "cx_lead", "admin")
SKILLS = ("billing", "technical", "commercial")
OPEN_STATES = ("queued", "assigned")


class DeskUser(Base):
    __tablename__ = "desk_users"

    id = Column(Integer, primary_key=True)
    username = Column(String(64), nullable=False, unique=True)
    display_name = Column(String(100), nullable=False)
    password_hash = Column(String(200), nullable=False)
    role = Column(String(16), nullable=False)
    skills = Column(String(100), nullable=False, default="")  # comma-separated
    languages = Column(String(20), nullable=False, default="it")  # comma-separated
    presence = Column(String(16), nullable=False, default="offline")  # online, away, offline
    presence_at = Column(UTCDateTime, nullable=False, default=utcnow)
    active = Column(Boolean, nullable=False, default=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)

    @property
    def skill_list(self) -> list[str]:
        return [s for s in self.skills.split(",") if s]

    @property
    def language_list(self) -> list[str]:
        return [s for s in self.languages.split(",") if s]


class DeskSession(Base):
    """A login: the cookie holds a random token, the table only its SHA-256."""

    __tablename__ = "desk_sessions"

    token_hash = Column(String(64), primary_key=True)
    user_id = Column(Integer, ForeignKey("desk_users.id", ondelete="CASCADE"), nullable=False)
    csrf_token = Column(String(64), nullable=False)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    expires_at = Column(UTCDateTime, nullable=False)

    user = relationship("DeskUser")


class Handover(Base):
    __tablename__ = "handovers"
    __table_args__ = (Index("ix_handover_state_created", "state", "created_at"),)

    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(128), nullable=False, index=True)
    channel = Column(String(16), nullable=False)
    input_channel = Column(String(32), nullable=False, default="")
    customer_code = Column(String(8))
    customer_name = Column(String(200), nullable=False, default="")
    language = Column(String(2), nullable=False)
    persona = Column(String(16))
    vip = Column(Boolean, nullable=False, default=False)
    priority = Column(Integer, nullable=False, default=0)
    reason = Column(String(32), nullable=False)
    skill = Column(String(16), nullable=False)
    # queued → assigned → closed, queued → abandoned, queued → fallback (callback or ticket)
    state = Column(String(16), nullable=False, default="queued")
    outcome = Column(String(32))
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    queued_at = Column(UTCDateTime, nullable=False, default=utcnow)
    assigned_at = Column(UTCDateTime)
    closed_at = Column(UTCDateTime)
    agent_id = Column(Integer, ForeignKey("desk_users.id", ondelete="SET NULL"))
    wait_seconds = Column(Integer)
    handling_seconds = Column(Integer)
    last_customer_at = Column(UTCDateTime)
    last_agent_at = Column(UTCDateTime)
    summary = Column(Text, nullable=False, default="")
    context_pack = Column(Text, nullable=False, default="{}")  # JSON, frozen at handover time

    agent = relationship("DeskUser")
    transitions = relationship("HandoverTransition", back_populates="handover",
                               cascade="all, delete-orphan",
                               order_by="HandoverTransition.id")


class HandoverTransition(Base):
    __tablename__ = "handover_transitions"

    id = Column(Integer, primary_key=True)
    handover_id = Column(Integer, ForeignKey("handovers.id", ondelete="CASCADE"),
                         nullable=False, index=True)
    state = Column(String(16), nullable=False)
    at = Column(UTCDateTime, nullable=False, default=utcnow)
    agent_id = Column(Integer, ForeignKey("desk_users.id", ondelete="SET NULL"))
    note = Column(String(200), nullable=False, default="")

    handover = relationship("Handover", back_populates="transitions")
