"""The audited reveal (admin only): the raw tracker events of one session, unmasked, after an
audit row with the admin's reason is written. The only part of the console that reads personal
data."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy.orm import Session

from bot.analytics.models import RevealAudit
from bot.analytics.queries.conversation import get_row, iso
from bot.analytics.redact import redact


def reveal_window(db: Session, conversation_id: int) -> tuple[str, float, float | None]:
    """(sender id, first and last timestamp) of the session, to read it from the tracker.
    The end is None while the session is open: everything after its start belongs to it
    until the next session starts."""
    conv = get_row(db, conversation_id)
    end = (conv.ended_at or conv.last_event_at) if conv.ended else None
    return conv.sender_id, conv.session_start, end.timestamp() if end else None


def reveal_lines(events: list[dict], start: float, end: float | None) -> list[dict]:
    """The unmasked transcript of one session out of the raw tracker events: customer, bot and
    agent messages of the window [start, end] (1 ms of slack each side; an open session ends at
    the next `session_started`)."""
    lines = []
    for e in events:
        ts = float(e.get("timestamp") or 0)
        if ts < start - 0.001:
            continue
        if end is not None and ts > end + 0.001:
            break
        if end is None and e.get("event") == "session_started" and ts > start + 0.001:
            break
        when = iso(datetime.fromtimestamp(ts, timezone.utc))
        if e.get("event") == "user":
            parse = e.get("parse_data") or {}
            intent = parse.get("intent") or {}
            lines.append({"at": when, "sender": "customer", "text": e.get("text") or "",
                          "intent": intent.get("name"), "confidence": intent.get("confidence"),
                          "entities": [{"entity": x.get("entity"), "value": x.get("value")}
                                       for x in parse.get("entities") or []], "agent": None})
        elif e.get("event") == "bot" and e.get("text"):
            agent = (e.get("metadata") or {}).get("agent")
            lines.append({"at": when, "sender": "agent" if agent else "bot",
                          "text": e.get("text") or "", "intent": None, "confidence": None,
                          "entities": [], "agent": agent or None})
    return lines


MIN_REVEAL_REASON = 8  # characters, of which at least 5 letters or digits


def record_reveal(db: Session, conversation_id: int, user_id: int | None, username: str,
                  reason: str = "") -> int:
    """The audit row of a reveal; its id. The reason is required: at least
    `MIN_REVEAL_REASON` characters (spaces collapsed) with at least 5 letters or digits,
    else ValueError."""
    get_row(db, conversation_id)
    given = " ".join(str(reason or "").split())
    if len(given) < MIN_REVEAL_REASON or sum(ch.isalnum() for ch in given) < 5:
        raise ValueError(f"reason: say why you need the personal data (at least "
                         f"{MIN_REVEAL_REASON} characters, e.g. the customer's request and "
                         "its number); it is recorded with the reveal")
    row = RevealAudit(conversation_id=conversation_id, user_id=user_id, username=username[:64],
                      reason=redact(str(reason or "").strip())[:200],
                      at=datetime.now(timezone.utc))
    db.add(row)
    db.flush()
    return row.id
