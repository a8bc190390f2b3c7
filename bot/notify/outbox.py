"""The outbox table: the embedded demo's "sending", and the audit of what was really sent.

In the embedded demo (`OTP_DELIVERY=outbox`) a message, one-time code included, only becomes a
row that `python -m bot outbox` shows, so that the demo can be used without a mail server.
When messages are really sent, the row is an audit record without the content: a code kept in
the database would let anyone who reads it verify as the customer.
"""

from __future__ import annotations

from contextlib import nullcontext

from sqlalchemy.orm import Session

from bot.notify.base import Message, Sender


def _session_or_own(session: Session | None):
    from bot.persistence.db import session_scope

    return nullcontext(session) if session is not None else session_scope()


class OutboxSender(Sender):
    """Writes the whole message to the outbox table (embedded profile only)."""

    name = "outbox"

    def __init__(self, session: Session | None = None) -> None:
        self.session = session  # the caller's transaction, else one of its own per message

    def send(self, message: Message) -> None:
        from bot.persistence import tables

        with _session_or_own(self.session) as s:
            s.add(tables.OutboxMessage(medium=message.medium, destination=message.destination,
                                  subject=message.subject, body=message.body))


def record_sent(session: Session | None, message: Message, via: str) -> None:
    """An audit row of a message sent by `via`: to whom, when, the subject; not the body."""
    from bot.persistence import tables

    with _session_or_own(session) as s:
        s.add(tables.OutboxMessage(medium=message.medium, destination=message.destination,
                              subject=message.subject,
                              body=f"[sent via {via}; the content is not stored]"))
