"""Which language a customer writes in (Italian or English), for anonymous conversations."""

from __future__ import annotations

import re
from functools import lru_cache

CONFIDENCE = 0.8
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
    words = re.findall(r"[^\W\d_]+", (text or "").lower())
    if not words:
        return None
    if len(words) == 1 and words[0] in SHORT_WORDS:
        return SHORT_WORDS[words[0]]
    values = _detector().compute_language_confidence_values(" ".join(words)[:500])
    best = values[0]
    if best.value < CONFIDENCE:
        return None
    return "en" if best.language.name == "ENGLISH" else "it"
