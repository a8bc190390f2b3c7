"""The console's exports, masked text only: the list (CSV, JSON) and one conversation's
transcript (CSV, JSON), with every cell a spreadsheet could run as a formula neutralised."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any, Iterable

from sqlalchemy.orm import Session

from bot.analytics.queries.conversation import NotFound, get_conversation
from bot.analytics.queries.filters import Filters
from bot.analytics.queries.listing import iter_conversations

LIST_FIELDS = ("id", "started_at", "ended_at", "channel", "language", "persona",
               "customer_code", "outcome", "turns", "fallbacks", "csat", "csat_comment",
               "handed_over", "handover_reason", "reviewed", "intents", "stages", "tags")
TRANSCRIPT_FIELDS = ("conversation_id", "message_id", "at", "sender", "agent", "text", "intent",
                     "confidence", "entities", "fallback", "handover", "annotated_intent")


FORMULA_TRIGGERS = frozenset("=+-@\t\r")
# Where a spreadsheet may split a cell into several (the separator of the import: ';' is the
# Italian default, ',' the English one; tab, '|' and line breaks are offered too).
CELL_SEPARATORS = frozenset(";,\t|\n\r")
_PLAIN_NUMBER = re.compile(r" *[+-]?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)? *")


# Characters a spreadsheet may skip at the start of a cell: spaces, a quote (a `"` a splitting
# spreadsheet leaves in front), no-break and zero-width spaces.
_LEADING = frozenset(' "\u00a0\u2007\u202f\u200b\u200c\u200d\u2060\ufeff')


def _neutralise(text: str) -> str:
    """`text` with a ' before every formula trigger that starts the cell or a piece a
    spreadsheet could split off (after a separator, leading spaces allowed), so that no piece
    runs as a formula: `x;=1+1;y` becomes `x;'=1+1;y`. A piece that is a plain number (`-3`,
    up to the next separator of its kind, or the whole cell) is left alone."""
    out: list[str] = []
    start, sep = True, None  # at the start of a piece; the separator that began it
    for i, ch in enumerate(text):
        if start and ch in _LEADING:  # spreadsheets skip these before a formula
            out.append(ch)
            continue
        if start and ch in FORMULA_TRIGGERS:
            end = len(text) if sep is None else text.find(sep, i + (ch == sep))
            piece = text[i:end if end >= 0 else len(text)]
            if not _PLAIN_NUMBER.fullmatch(text.strip() if sep is None else piece):
                out.append("'")
        out.append(ch)
        start = ch in CELL_SEPARATORS
        sep = ch if start else None
    return "".join(out)


def _cell(value: Any) -> Any:
    """A CSV cell; text that a spreadsheet would run as a formula, in the cell or in any piece
    of it that a spreadsheet splitting on ';', ',', tab, '|' or a line break would make a cell
    of its own, is quoted with '."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        value = "; ".join(str(v) for v in value)
    if value is None:
        return ""
    if isinstance(value, str):
        return _neutralise(value)
    return value


def _csv(header: tuple[str, ...], rows: Iterable[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(row.get(k)) for k in header])
    return out.getvalue()


def export_list_csv(db: Session, filters: Filters, sort: str = "-started_at") -> str:
    """All the conversations matching `filters` (not only a page), one line each."""
    return _csv(LIST_FIELDS, iter_conversations(db, filters, sort))


def export_list_json(db: Session, filters: Filters, sort: str = "-started_at") -> str:
    rows = [{k: r[k] for k in LIST_FIELDS} for r in iter_conversations(db, filters, sort)]
    return json.dumps({"filters": filters.to_args(), "sort": sort, "total": len(rows),
                       "conversations": rows}, ensure_ascii=False, indent=1)


def export_conversation_json(db: Session, conversation_id: int) -> str:
    record = get_conversation(db, conversation_id)
    if record is None:
        raise NotFound(f"no conversation {conversation_id}")
    return json.dumps(record, ensure_ascii=False, indent=1)


def export_conversation_csv(db: Session, conversation_id: int) -> str:
    """The transcript lines of one conversation."""
    record = get_conversation(db, conversation_id)
    if record is None:
        raise NotFound(f"no conversation {conversation_id}")
    rows = [{"conversation_id": record["id"], "message_id": m["id"], "at": m["at"],
             "sender": m["sender"], "agent": m["agent"], "text": m["text"],
             "intent": m["intent"], "confidence": m["confidence"],
             "entities": json.dumps(m["entities"], ensure_ascii=False) if m["entities"] else "",
             "fallback": m["fallback"], "handover": m["handover"],
             "annotated_intent": (m["annotation"] or {}).get("intent")}
            for m in record["messages"]]
    return _csv(TRANSCRIPT_FIELDS, rows)
