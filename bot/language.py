"""Which language a customer writes in (Italian or English), for anonymous conversations."""

from __future__ import annotations

import re
from functools import lru_cache

LANGUAGES = ("it", "en")  # Italian first: the default where nothing says otherwise
CONFIDENCE = 0.8  # lingua alone
AGREEING_CONFIDENCE = 0.6  # lingua together with the function-word vote
FUNCTION_WORDS = {
    "en": {"the", "a", "an", "is", "are", "i", "you", "my", "me", "what", "how", "can", "do",
           "for", "to", "of", "and", "please", "it", "this", "have", "why", "when", "with"},
    "it": {"il", "lo", "la", "le", "gli", "un", "una", "è", "sono", "io", "mi", "ti", "che",
           "come", "per", "di", "del", "della", "e", "non", "ho", "perché", "quando", "con"},
}
# Openers too short for any statistical detector; everything else goes to lingua.
SHORT_WORDS = {
    "hi": "en", "hello": "en", "hey": "en", "thanks": "en", "thx": "en", "yes": "en",
    "ciao": "it", "salve": "it", "grazie": "it", "si": "it", "sì": "it", "buongiorno": "it",
    "buonasera": "it", "aiuto": "it",
}


@lru_cache(maxsize=1)
def _detector():
    from lingua import Language, LanguageDetectorBuilder

    return LanguageDetectorBuilder.from_languages(Language.ENGLISH, Language.ITALIAN).build()


def detect(text: str | None) -> str | None:
    """'it', 'en', or None when the text is too short or ambiguous to tell."""
    # markup and scripts are in no language
    text = re.sub(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", " ", text or "",
                  flags=re.IGNORECASE | re.DOTALL)
    words = re.findall(r"[^\W\d_]+", text.lower())
    if not words:
        return None
    if len(words) == 1:  # one word says little, except a few unmistakable ones
        return SHORT_WORDS.get(words[0])
    values = _detector().compute_language_confidence_values(" ".join(words)[:500])
    best = values[0]
    guess = "en" if best.language.name == "ENGLISH" else "it"
    if best.value >= CONFIDENCE:
        return guess
    votes = {lang: sum(w in vocab for w in words) for lang, vocab in FUNCTION_WORDS.items()}
    other = "it" if guess == "en" else "en"
    if best.value >= AGREEING_CONFIDENCE and votes[guess] > votes[other]:
        return guess
    return None
