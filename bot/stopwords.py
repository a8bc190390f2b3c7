"""What a customer writes to stop what is under way: a task in a form, or the wait for an
agent. One list for the actions and the desk."""

from __future__ import annotations

import re
import unicodedata

STOP_PHRASES = frozenset({
    "annulla", "annullare", "annulla tutto", "lascia stare", "lascia perdere", "lasciamo stare",
    "lasciamo perdere", "stop", "basta", "basta cosi", "non importa", "fa niente",
    "non fa niente", "no lascia stare", "no lascia perdere", "no annulla", "ok lascia stare",
    "cancel", "cancel that", "never mind", "nevermind", "forget it", "forget about it",
    "stop it", "quit", "no never mind", "no forget it", "ok never mind",
})


def fold(text: str) -> str:
    """Lower case, no accents or punctuation, single spaces: "Lascia stare!" -> "lascia stare"."""
    text = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode().lower()
    return " ".join(re.sub(r"[^a-z0-9@+ ]+", " ", text).split())


def is_stop_phrase(text: str) -> bool:
    """Whether the whole message is a way of saying "stop" (a longer message is classified)."""
    return fold(text) in STOP_PHRASES


# Words a customer puts in front of a stop ("anzi no, lascia perdere", "no wait, cancel that").
FILLERS = frozenset({
    "anzi", "no", "ah", "oh", "eh", "aspetta", "aspetti", "ok", "okay", "allora", "dai", "mah",
    "uhm", "ehm", "beh", "vabbe", "scusa", "scusi", "wait", "sorry", "actually", "hmm", "um",
    "oops", "well",
})


def _chunks_after_fillers(text: str) -> list[str]:
    """The message cut at punctuation, folded, without the filler words it opens with."""
    chunks = [fold(c) for c in re.split(r"[,.;:!?]", text or "")]
    chunks = [c for c in chunks if c]
    while chunks:
        words = chunks[0].split()
        while words and words[0] in FILLERS:
            words.pop(0)
        if words:
            chunks[0] = " ".join(words)
            return chunks
        chunks.pop(0)
    return chunks


def starts_with_stop(text: str) -> bool:
    """Whether the message opens with a way of saying "stop", maybe after a filler ("lascia
    stare, la faccio un altro giorno", "anzi no, lascia perdere", "no wait, cancel that"): a
    phrase of two words or more, or a phrase that is the whole first part of the message."""
    chunks = _chunks_after_fillers(text)
    if not chunks:
        return False
    first = chunks[0]
    return first in STOP_PHRASES or any(
        " " in phrase and first.startswith(phrase + " ") for phrase in STOP_PHRASES)


def remainder_after(text: str, phrases: frozenset) -> str:
    """What a message says after one of `phrases` that opens it (maybe after a filler), as
    written ("no wait, cancel that. How much is my bill?" -> "How much is my bill?"); empty when
    nothing follows or the message does not open with one of them."""
    parts = [p for p in re.split(r"(?<=[,.;:!?])\s+", text or "") if fold(p)]
    for index, part in enumerate(parts):
        words = fold(part).split()
        while words and words[0] in FILLERS:
            words.pop(0)
        if not words:
            continue  # "no wait," before the stop
        if " ".join(words) in phrases:
            return " ".join(parts[index + 1:]).strip()
        return ""
    return ""


def remainder_after_stop(text: str) -> str:
    """What follows the stop that opens a message (see `remainder_after`)."""
    return remainder_after(text, STOP_PHRASES)


def request_after_stop(text: str) -> bool:
    """Whether a message that stops goes on to ask something ("no wait, cancel that. how much
    is my bill?")."""
    return "?" in (text or "") and len(_chunks_after_fillers(text)) > 1
