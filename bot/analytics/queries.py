"""Queries of the review console on the conversation log: the filtered, sorted, paginated list,
one conversation with its transcript, the CX lead's tags, notes, reviewed flag and intent
annotations, and the exports.

Everything read here is the masked log (`bot.analytics.models`): notes are masked on the way in
too, so no export or page of the console holds personal data. Only `reveal_lines` works on the
raw tracker events, for the audited reveal of an admin.

Full-text search uses the index of migration 0004: FTS5 `MATCH` on SQLite (the tokenizer removes
diacritics, so "perche" finds "perché" and the other way round) and
`to_tsvector('simple', text) @@ tsquery` on PostgreSQL (the same expression as the GIN index;
the 'simple' configuration keeps accents, so each word is also searched without its accents and
with an accented last vowel, the way Italian writes them: "perche" finds "perché", "citta"
finds "città"). What the user types is reduced to its words, so quotes, operators or `*` are
plain text: every word must appear in the same message.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Any, Iterator, Mapping
from zoneinfo import ZoneInfo

from sqlalchemy import column, delete, func, literal_column, select, table
from sqlalchemy.orm import Session

from bot.analytics.models import (
    OUTCOMES,
    PREDEFINED_TAGS,
    STAGE_LABELS,
    STAGES,
    Conversation,
    ConversationIntent,
    ConversationMessage,
    ConversationNote,
    ConversationTag,
    MessageAnnotation,
    RevealAudit,
)
from bot.analytics.redact import redact
from bot.crm.models import PERSONAS
from bot.settings import ROOT

ROME = ZoneInfo("Europe/Rome")
LANGUAGES = ("it", "en")
CHANNELS = ("web", "whatsapp", "telegram", "messenger", "shell")
SORT_KEYS = ("started_at", "turns", "fallbacks", "csat", "outcome", "channel")
MAX_PER_PAGE = 500
MAX_TAG = 40
MAX_NOTE = 4000
MAX_QUERY = 200
MAX_SEARCH_WORDS = 12
CUSTOMER_CODE = re.compile(r"C\d{7}")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_ACCENTED = {"a": "àá", "e": "èé", "i": "ìí", "o": "òó", "u": "ùú"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class NotFound(LookupError):
    """No such conversation or message."""


@lru_cache(maxsize=1)
def domain_intents() -> tuple[str, ...]:
    """The intents of the Rasa domain (domain/*.yml), sorted."""
    import yaml

    names: set[str] = set()
    for path in sorted((ROOT / "domain").glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for item in data.get("intents") or []:
            names.add(item if isinstance(item, str) else next(iter(item)))
    return tuple(sorted(names))


# ---- filters -------------------------------------------------------------------------------


@dataclass
class Filters:
    """What the CX lead filters the list on; every field is optional (None: no filter)."""

    date_from: date | None = None  # Conversation.started_at, Europe/Rome days, inclusive
    date_to: date | None = None
    channel: str | None = None
    language: str | None = None
    persona: str | None = None
    intent: str | None = None  # any of the conversation's intents
    stage: str | None = None  # any of the conversation's journey stages
    outcome: str | None = None
    csat: int | None = None  # exact rating 1-5
    tag: str | None = None
    reviewed: bool | None = None
    customer_code: str | None = None
    q: str | None = None  # full-text search in the messages

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> "Filters":
        """From query-string values (empty means no filter); ValueError names every bad one."""
        problems: list[str] = []
        values: dict[str, Any] = {}

        def get(name: str) -> str | None:
            value = args.get(name)
            if isinstance(value, (list, tuple)):
                value = value[0] if value else None
            value = (str(value) if value is not None else "").strip()
            return value or None

        for name in ("date_from", "date_to"):
            raw = get(name)
            if raw is not None:
                try:
                    values[name] = date.fromisoformat(raw)
                except ValueError:
                    problems.append(f"{name}: expected a date YYYY-MM-DD, got {raw!r}")
        choices = {"channel": CHANNELS, "language": LANGUAGES, "persona": PERSONAS,
                   "intent": domain_intents(), "stage": STAGES, "outcome": OUTCOMES}
        for name, allowed in choices.items():
            raw = get(name)
            if raw is None:
                continue
            if name in ("channel", "language", "persona", "stage", "outcome"):
                raw = raw.lower()
            if raw not in allowed:
                problems.append(f"{name}: one of {', '.join(allowed)}; got {raw!r}")
            else:
                values[name] = raw
        raw = get("csat")
        if raw is not None:
            if raw.isdigit() and 1 <= int(raw) <= 5:
                values["csat"] = int(raw)
            else:
                problems.append(f"csat: a rating from 1 to 5, got {raw!r}")
        raw = get("tag")
        if raw is not None:
            if len(raw) > MAX_TAG:
                problems.append(f"tag: at most {MAX_TAG} characters")
            else:
                values["tag"] = raw
        raw = get("reviewed")
        if raw is not None:
            if raw.lower() in _TRUE:
                values["reviewed"] = True
            elif raw.lower() in _FALSE:
                values["reviewed"] = False
            else:
                problems.append(f"reviewed: yes or no, got {raw!r}")
        raw = get("customer_code")
        if raw is not None:
            if CUSTOMER_CODE.fullmatch(raw.upper()):
                values["customer_code"] = raw.upper()
            else:
                problems.append(f"customer_code: C followed by 7 digits, got {raw!r}")
        raw = get("q")
        if raw is not None:
            if len(raw) > MAX_QUERY:
                problems.append(f"q: at most {MAX_QUERY} characters")
            else:
                values["q"] = raw
        filters = cls(**values)
        if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
            problems.append("date_from: must not be after date_to")
        if problems:
            raise ValueError("; ".join(problems))
        return filters

    def to_args(self) -> dict[str, str]:
        """The query-string values that give these filters back (`from_args`)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, bool):
                value = "yes" if value else "no"
            out[f.name] = value.isoformat() if isinstance(value, date) else str(value)
        return out


@dataclass
class Page:
    rows: list[dict]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    def as_dict(self) -> dict:
        return {**asdict(self), "pages": self.pages}


def rome_day_start(day: date) -> datetime:
    """The first instant of a Europe/Rome calendar day, in UTC."""
    return datetime.combine(day, time(0, 0), ROME).astimezone(timezone.utc)


def search_words(q: str | None) -> list[str]:
    """The words of what the user typed, lower case, without duplicates; nothing else of it."""
    words: list[str] = []
    for word in _WORD.findall(unicodedata.normalize("NFC", q or "").lower()):
        if word not in words:
            words.append(word)
    return words[:MAX_SEARCH_WORDS]


def fts5_query(words: list[str]) -> str:
    """An FTS5 query matching all `words`, each a quoted string (no operator is possible)."""
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)


def strip_accents(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", word)
                   if not unicodedata.combining(c))


def accent_variants(word: str) -> list[str]:
    """The word as typed, without accents, and with an accented last vowel (Italian)."""
    base = strip_accents(word)
    out = [word]
    for v in [base] + [base[:-1] + a for a in _ACCENTED.get(base[-1:], "")]:
        if v and v not in out:
            out.append(v)
    return out


def _search_condition(db: Session, q: str):
    words = search_words(q)
    if not words:
        return None
    if db.bind.dialect.name == "sqlite":
        fts = table("conversation_messages_fts", column("rowid"), column("text"))
        matching = select(fts.c.rowid).where(fts.c.text.op("MATCH")(fts5_query(words)))
        messages = select(ConversationMessage.conversation_id).where(
            ConversationMessage.id.in_(matching))
    else:
        config = literal_column("'simple'::regconfig")
        query = None
        for word in words:
            alternatives = None
            for variant in accent_variants(word):
                one = func.plainto_tsquery(config, variant)
                alternatives = one if alternatives is None else alternatives.op("||")(one)
            query = alternatives if query is None else query.op("&&")(alternatives)
        messages = select(ConversationMessage.conversation_id).where(
            func.to_tsvector(config, ConversationMessage.text).op("@@")(query))
    return Conversation.id.in_(messages)


def _conditions(db: Session, f: Filters) -> list:
    c = [Conversation.turns > 0]
    if f.date_from:
        c.append(Conversation.started_at >= rome_day_start(f.date_from))
    if f.date_to:
        c.append(Conversation.started_at < rome_day_start(f.date_to + timedelta(days=1)))
    for name in ("channel", "language", "persona", "outcome", "csat", "customer_code"):
        value = getattr(f, name)
        if value is not None:
            c.append(getattr(Conversation, name) == value)
    if f.reviewed is not None:
        c.append(Conversation.reviewed.is_(f.reviewed))
    # IN (indexed sub-select): SQLite starts from the index of a selective filter
    if f.intent:
        c.append(Conversation.id.in_(select(ConversationIntent.conversation_id)
                                     .where(ConversationIntent.intent == f.intent)))
    if f.stage:
        c.append(Conversation.id.in_(select(ConversationIntent.conversation_id)
                                     .where(ConversationIntent.stage == f.stage)))
    if f.tag:
        c.append(Conversation.id.in_(select(ConversationTag.conversation_id)
                                     .where(ConversationTag.tag == f.tag)))
    if f.q:
        condition = _search_condition(db, f.q)
        if condition is not None:
            c.append(condition)
    return c


def parse_sort(sort: str | None) -> tuple[str, bool]:
    """("started_at", True) for "-started_at"; ValueError for an unknown key."""
    sort = (sort or "-started_at").strip()
    descending = sort.startswith("-")
    key = sort[1:] if descending else sort
    if key not in SORT_KEYS:
        raise ValueError(f"sort: one of {', '.join(SORT_KEYS)} (prefix - for descending); "
                         f"got {sort!r}")
    return key, descending


def _order(sort: str | None) -> list:
    key, descending = parse_sort(sort)
    column = getattr(Conversation, key)
    order = [Conversation.csat.is_(None)] if key == "csat" else []  # unrated ones last
    order.append(column.desc() if descending else column.asc())
    order.append(Conversation.id.desc() if descending else Conversation.id.asc())
    return order


LIST_COLUMNS = (Conversation.id, Conversation.started_at, Conversation.ended_at,
                Conversation.last_event_at, Conversation.channel, Conversation.language,
                Conversation.persona, Conversation.customer_code, Conversation.outcome,
                Conversation.turns, Conversation.fallbacks, Conversation.csat,
                Conversation.csat_comment, Conversation.handed_over,
                Conversation.handover_reason, Conversation.handover_state,
                Conversation.reviewed, Conversation.ended)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _list_row(r) -> dict:
    row = dict(r)
    for key in ("started_at", "ended_at", "last_event_at"):
        row[key] = _iso(row[key])
    row["handed_over"], row["reviewed"], row["ended"] = (bool(row["handed_over"]),
                                                         bool(row["reviewed"]),
                                                         bool(row["ended"]))
    row["intents"], row["stages"], row["tags"] = [], [], []
    return row


def _attach(db: Session, rows: list[dict]) -> list[dict]:
    """The rows' intents (most frequent first) and tags: one query each."""
    by_id = {r["id"]: r for r in rows}
    if not by_id:
        return rows
    for cid, intent, stage in db.execute(
            select(ConversationIntent.conversation_id, ConversationIntent.intent,
                   ConversationIntent.stage)
            .where(ConversationIntent.conversation_id.in_(list(by_id)))
            .order_by(ConversationIntent.conversation_id, ConversationIntent.count.desc(),
                      ConversationIntent.id)):
        row = by_id[cid]
        row["intents"].append(intent)
        if stage not in row["stages"]:
            row["stages"].append(stage)
    for cid, tag in db.execute(
            select(ConversationTag.conversation_id, ConversationTag.tag)
            .where(ConversationTag.conversation_id.in_(list(by_id)))
            .order_by(ConversationTag.conversation_id, ConversationTag.tag)):
        by_id[cid]["tags"].append(tag)
    return rows


def list_conversations(db: Session, filters: Filters, sort: str = "-started_at", page: int = 1,
                       per_page: int = 50) -> Page:
    """One page of the conversations matching `filters` (only those with a customer turn),
    and how many match in all: four queries whatever the page size."""
    if not isinstance(page, int) or page < 1:
        raise ValueError("page: a number from 1")
    if not isinstance(per_page, int) or not 1 <= per_page <= MAX_PER_PAGE:
        raise ValueError(f"per_page: a number from 1 to {MAX_PER_PAGE}")
    order = _order(sort)
    conditions = _conditions(db, filters)
    total = db.execute(select(func.count()).select_from(Conversation)
                       .where(*conditions)).scalar_one()
    rows = [_list_row(r) for r in db.execute(
        select(*LIST_COLUMNS).where(*conditions).order_by(*order)
        .limit(per_page).offset((page - 1) * per_page)).mappings()]
    return Page(rows=_attach(db, rows), total=int(total), page=page, per_page=per_page)


def iter_conversations(db: Session, filters: Filters, sort: str = "-started_at",
                       chunk: int = 1000) -> Iterator[dict]:
    """Every conversation matching `filters`, in order, for the exports (streamed in chunks)."""
    order = _order(sort)
    result = db.execute(select(*LIST_COLUMNS).where(*_conditions(db, filters)).order_by(*order)
                        .execution_options(yield_per=chunk))
    for part in result.mappings().partitions(chunk):
        yield from _attach(db, [_list_row(r) for r in part])


# ---- one conversation ----------------------------------------------------------------------


def _users(db: Session, ids) -> dict[int, str]:
    from bot.handover.models import DeskUser

    ids = {i for i in ids if i}
    if not ids:
        return {}
    return dict(db.execute(select(DeskUser.id, DeskUser.display_name)
                           .where(DeskUser.id.in_(ids))).all())


def _get(db: Session, conversation_id: int) -> Conversation:
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
    users = _users(db, [conv.reviewed_by] + [t.user_id for t in tags]
                   + [a.user_id for _, a in lines if a is not None])
    record = {c: getattr(conv, c) for c in (
        "id", "customer_code", "channel", "language", "persona", "outcome", "ended", "turns",
        "fallbacks", "active_loop", "handed_over", "handover_reason", "handover_state",
        "handover_wait_seconds", "handover_handling_seconds", "csat", "csat_comment",
        "reviewed")}
    record.update(started_at=_iso(conv.started_at), last_event_at=_iso(conv.last_event_at),
                  ended_at=_iso(conv.ended_at), reviewed_by=users.get(conv.reviewed_by))
    record["intents"] = [{"intent": i.intent, "stage": i.stage,
                          "stage_label": STAGE_LABELS.get(i.stage, i.stage), "count": i.count}
                         for i in intents]
    record["messages"] = [_message(m, a, users) for m, a in lines]
    record["tags"] = [{"tag": t.tag, "by": users.get(t.user_id), "at": _iso(t.at)}
                      for t in tags]
    record["notes"] = [{"id": n.id, "author": n.author, "text": n.text, "at": _iso(n.at)}
                       for n in notes]
    return record


def _message(m: ConversationMessage, a: MessageAnnotation | None, users: dict) -> dict:
    return {"id": m.id, "at": _iso(m.at), "sender": m.sender, "text": m.text,
            "intent": m.intent, "confidence": m.confidence,
            "entities": json.loads(m.entities) if m.entities else [], "agent": m.agent,
            "fallback": bool(m.fallback), "handover": bool(m.handover),
            "annotation": ({"intent": a.intent, "language": a.language,
                            "by": users.get(a.user_id), "at": _iso(a.at)} if a else None)}


# ---- the CX lead's work --------------------------------------------------------------------


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
    _get(db, conversation_id)
    if tag not in _tags(db, conversation_id):
        db.add(ConversationTag(conversation_id=conversation_id, tag=tag, user_id=user_id,
                               at=datetime.now(timezone.utc)))
        db.flush()
    return _tags(db, conversation_id)


def remove_tag(db: Session, conversation_id: int, tag: str) -> list[str]:
    _get(db, conversation_id)
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
    _get(db, conversation_id)
    note = ConversationNote(conversation_id=conversation_id, text=redact(text),
                            author=(author or "")[:100], user_id=user_id,
                            at=datetime.now(timezone.utc))
    db.add(note)
    db.flush()
    return {"id": note.id, "author": note.author, "text": note.text, "at": _iso(note.at)}


def set_reviewed(db: Session, conversation_id: int, reviewed: bool,
                 user_id: int | None = None) -> bool:
    conv = _get(db, conversation_id)
    conv.reviewed = bool(reviewed)
    conv.reviewed_by = user_id if reviewed else None
    db.flush()
    return conv.reviewed


def _customer_message(db: Session, conversation_id: int, message_id: int
                      ) -> tuple[Conversation, ConversationMessage]:
    conv = _get(db, conversation_id)
    msg = db.get(ConversationMessage, message_id)
    if msg is None or msg.conversation_id != conv.id:
        raise NotFound(f"no message {message_id} in conversation {conversation_id}")
    if msg.sender != "customer":
        raise ValueError("only the customer's messages can be annotated")
    return conv, msg


def annotate(db: Session, conversation_id: int, message_id: int, intent: str,
             user_id: int | None = None) -> dict:
    """The intent a customer message should have had (one of the domain's), in the language of
    the conversation; replaces an earlier annotation of that message."""
    intent = str(intent or "").strip()
    if intent not in domain_intents():
        raise ValueError(f"intent: one of the domain's intents, got {intent!r}")
    conv, msg = _customer_message(db, conversation_id, message_id)
    row = db.execute(select(MessageAnnotation).where(MessageAnnotation.message_id == msg.id)
                     ).scalar_one_or_none()
    if row is None:
        row = MessageAnnotation(message_id=msg.id)
        db.add(row)
    row.intent, row.language, row.user_id = intent, conv.language, user_id
    row.at = datetime.now(timezone.utc)
    db.flush()
    return {"message_id": msg.id, "intent": row.intent, "language": row.language,
            "at": _iso(row.at)}


def remove_annotation(db: Session, conversation_id: int, message_id: int) -> bool:
    """True when there was an annotation to remove."""
    _, msg = _customer_message(db, conversation_id, message_id)
    return db.execute(delete(MessageAnnotation).where(MessageAnnotation.message_id == msg.id)
                      ).rowcount > 0


# ---- exports (masked text only) ------------------------------------------------------------

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


def _csv(header: tuple[str, ...], rows) -> str:
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


# ---- reveal (admin only, audited) ----------------------------------------------------------


def reveal_window(db: Session, conversation_id: int) -> tuple[str, float, float | None]:
    """(sender id, first and last timestamp) of the session, to read it from the tracker.
    The end is None while the session is open: everything after its start belongs to it
    until the next session starts."""
    conv = _get(db, conversation_id)
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
        when = _iso(datetime.fromtimestamp(ts, timezone.utc))
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
    _get(db, conversation_id)
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


# ---- what the console offers ---------------------------------------------------------------


def options() -> dict:
    """The values of the filter form and of the tag and annotation controls."""
    return {"channels": list(CHANNELS), "languages": list(LANGUAGES), "personas": list(PERSONAS),
            "intents": list(domain_intents()), "outcomes": list(OUTCOMES),
            "stages": [{"value": s, "label": STAGE_LABELS[s]} for s in STAGES],
            "tags": list(PREDEFINED_TAGS), "sort_keys": list(SORT_KEYS)}


__all__ = ["Filters", "Page", "NotFound", "list_conversations", "iter_conversations",
           "get_conversation", "add_tag", "remove_tag", "add_note", "set_reviewed", "annotate",
           "remove_annotation", "export_list_csv", "export_list_json",
           "export_conversation_json", "export_conversation_csv", "reveal_window",
           "reveal_lines", "record_reveal", "domain_intents", "options", "search_words",
           "fts5_query", "accent_variants"]
