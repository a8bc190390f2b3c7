"""Plumbing tables no domain owns: named counters (ticket numbers), the message ids and options
of the messaging channels, and the outbox of e-mails and SMS."""

from __future__ import annotations

from sqlalchemy import Column, Integer, String, Text, UniqueConstraint

from bot.persistence.types import Base, UTCDateTime, utcnow


class OutboxMessage(Base):
    """Messages the product "sends" (e-mail, SMS); the embedded profile only records them."""

    __tablename__ = "outbox"

    id = Column(Integer, primary_key=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    medium = Column(String(16), nullable=False)
    destination = Column(String(254), nullable=False)
    subject = Column(String(200), nullable=False)
    body = Column(Text, nullable=False)


class Counter(Base):
    """Named counters for human-readable ids (ticket numbers)."""

    __tablename__ = "counters"

    name = Column(String(32), primary_key=True)
    value = Column(Integer, nullable=False, default=0)


class ChannelMessage(Base):
    """A message id a messaging platform delivered: a second delivery of it is ignored."""

    __tablename__ = "channel_messages"
    __table_args__ = (UniqueConstraint("channel", "message_id", name="uq_channel_message"),)

    id = Column(Integer, primary_key=True)
    channel = Column(String(16), nullable=False)
    message_id = Column(String(255), nullable=False)
    received_at = Column(UTCDateTime, nullable=False, default=utcnow)


class ChannelOptions(Base):
    """The options (buttons) last sent to a recipient on a channel, as JSON [{title, payload}]:
    a reply "2" or an option's title selects one."""

    __tablename__ = "channel_options"
    __table_args__ = (UniqueConstraint("channel", "recipient", name="uq_channel_options"),)

    id = Column(Integer, primary_key=True)
    channel = Column(String(16), nullable=False)
    recipient = Column(String(128), nullable=False)
    options = Column(Text, nullable=False)
    sent_at = Column(UTCDateTime, nullable=False, default=utcnow)
