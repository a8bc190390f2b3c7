"""Full-text search in the conversation log's messages (the index of migration 0004).

FTS5 `MATCH` on SQLite (the tokenizer removes diacritics, so "perche" finds "perché" and the
other way round) and `to_tsvector('simple', text) @@ tsquery` on PostgreSQL (the same expression
as the GIN index; the 'simple' configuration keeps accents, so each word is also searched
without its accents and with an accented last vowel, the way Italian writes them: "perche"
finds "perché", "citta" finds "città"). What the user types is reduced to its words, so quotes,
operators or `*` are plain text: every word must appear in the same message.
"""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import column, func, literal_column, select, table
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement

from bot.analytics.models import Conversation, ConversationMessage

MAX_SEARCH_WORDS = 12
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_ACCENTED = {"a": "àá", "e": "èé", "i": "ìí", "o": "òó", "u": "ùú"}


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


def search_condition(db: Session, q: str) -> ColumnElement | None:
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
