"""Greetings and farewells in a message's raw text, without a model: what the FarewellDetector
(bot/nlu/farewell.py) and the actions (a farewell inside a form) both need. Only Rasa's
constants are imported, so the action server does not load TensorFlow for it."""

from __future__ import annotations

import re
from typing import Optional, Text

from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME

from bot.stopwords import fold

FAREWELLS = (
    "ciao", "ciao ciao", "arrivederci", "arrivederla", "buona giornata", "buona serata",
    "buonanotte", "buona notte", "a presto", "alla prossima", "saluti", "cordiali saluti",
    "a dopo", "bye", "bye bye", "goodbye", "good bye", "see you", "see ya", "see you soon",
    "have a nice day", "have a good day", "take care", "cheers", "talk soon",
)
GREETINGS = frozenset({
    "ciao", "salve", "buongiorno", "buonasera", "hello", "hi", "hey", "good morning",
    "good afternoon", "good evening",
})
# Intents that are not a request of their own: a farewell at the end decides.
NOT_A_REQUEST = frozenset({
    "thank_you", "affirm", "deny", "inform", "greet", "out_of_scope", "goodbye",
    DEFAULT_NLU_FALLBACK_INTENT_NAME,
})
_ENDS_WITH_FAREWELL = re.compile(
    r"(?:^|\s)(?:" + "|".join(sorted(map(re.escape, FAREWELLS), key=len, reverse=True)) + r")$")


# Words after a greeting that still make the message a greeting ("ciao Sportello").
WORDS_AFTER_GREETING = 2


def opens_with_greeting(text: Optional[Text]) -> bool:
    """Whether the message is a greeting, alone or followed by at most two words."""
    words = fold(text or "").split()
    for size in (2, 1):
        if " ".join(words[:size]) in GREETINGS:
            return len(words) - size <= WORDS_AFTER_GREETING
    return False


# "Buongiorno, dobbiamo comunicare le letture": a greeting, then a request of at least this
# many words, which is what the classifier should read.
WORDS_OF_A_REQUEST = WORDS_AFTER_GREETING + 1
_OPENING_GREETING = re.compile(
    r"^\W*(?:" + "|".join(sorted((re.escape(g).replace(r"\ ", r"\s+") for g in GREETINGS),
                                 key=len, reverse=True)) + r")\b[\W_]*", re.IGNORECASE)


def request_after_greeting(text: Optional[Text]) -> int:
    """Where the request starts in a message that opens with a greeting and goes on with one
    (the offset of the first character after the greeting); 0 when it does not."""
    match = _OPENING_GREETING.match(text or "")
    if not match or len(text[match.end():].split()) < WORDS_OF_A_REQUEST:
        return 0
    return match.end()


def closes_with_farewell(text: Optional[Text]) -> bool:
    """Whether the message ends with a farewell after something else ("ok grazie, ciao"); a
    farewell alone is left to the classifier ("ciao" alone opens most conversations)."""
    folded = fold(text or "")
    match = _ENDS_WITH_FAREWELL.search(folded)
    return bool(match) and match.start() > 0
