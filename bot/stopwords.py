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


def starts_with_stop(text: str) -> bool:
    """Whether the message opens with a way of saying "stop" and goes on ("lascia stare, la
    faccio un altro giorno", "never mind, I'll do it tomorrow"): a phrase of two words or more,
    or a single word followed by punctuation."""
    head = (text or "").strip().lower()
    for phrase in STOP_PHRASES:
        if " " in phrase and fold(head).startswith(phrase + " "):
            return True
    first = fold(re.split(r"[,.;:!?]", head, maxsplit=1)[0]) if re.search(r"[,.;:!?]", head) \
        else ""
    return first in STOP_PHRASES
