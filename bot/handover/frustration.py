"""A frustrated or angry customer, detected from Italian and English wording.

How it works (measured on tests/data/frustration.yml, results in bench/RESULTS.md):

- *strong cues* (2 points each): outrage, insults and swearing ("vergogna", "siete dei ladri",
  "fate schifo", "ridicolo", "inaccettabile", "non ne posso più", "ridiculous", "rip-off",
  "useless", "fed up", "sick of", "pathetic", ...);
- *weak cues* (1 point each): repeated contacts ("è la terza volta", "ancora una volta", "third
  time", "still not", "nobody answers"), blaming the bot ("non capisci niente", "stupid bot"),
  several exclamation marks, shouting (three or more words in capitals);
- a message scoring 2 or more is frustrated. A single weak cue is not enough: "ancora una volta
  la lettura" or "Grazie!!" stay with the bot.

Words are matched on lower-cased text with accents folded, so "piu" and "più" both count.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

STRONG = [
    # Italian
    r"vergogn\w*", r"schif\w*", r"fate schifo", r"ladri", r"truff\w*", r"incompetent\w*",
    r"ridicol\w*", r"assurd\w*", r"inaccettabil\w*", r"scandal\w*", r"vergognoso",
    r"pessim\w* servizio", r"servizio pessimo", r"servizio (?:penoso|osceno|indecente)",
    r"indecent\w*", r"non ne posso piu", r"sono stuf[oa]", r"mi avete (?:stancato|stufato|rotto)",
    r"sono (?:\w+ )?(?:furios[oa]|arrabbiat[oa]|incazzat[oa]|esasperat[oa]|indignat[oa])",
    r"cazz\w*", r"merd\w*", r"che palle", r"basta(?: cosi)?\s*!", r"presa in giro",
    r"prendete in giro", r"mi state prendendo in giro", r"buffoni", r"pagliacci",
    r"incredibile\s*!", r"inutil[ei]", r"e uno scandalo", r"denunc\w*", r"avvocato",
    # English
    r"disgrace\w*", r"disgust\w*", r"ridiculous", r"unacceptable", r"outrag\w*", r"scam\w*",
    r"thie(?:f|ves)", r"rip[- ]?off", r"incompetent", r"useless", r"worst", r"fed up",
    r"sick (?:and tired )?of", r"furious", r"(?:so|very|really) angry", r"i am angry",
    r"i'?m angry", r"pissed", r"fuck\w*", r"shit\w*", r"damn\w*", r"pathetic", r"appalling",
    r"terrible service", r"awful service", r"a joke", r"lawyer", r"shame on you",
    # threats to escalate or leave
    r"vi (?:faccio|facciamo) causa", r"vi denunc\w*", r"arera",
    r"associazione (?:dei )?consumatori", r"codacons", r"altroconsumo", r"striscia la notizia",
    r"ombudsman", r"consumer (?:association|rights)",
    r"(?:report|reporting|sue|suing) you", r"small claims", r"trading standards",
    # outrage and exasperation
    r"che razza di", r"vi rendete conto", r"sto perdendo la pazienza", r"ho perso la pazienza",
    r"del cavolo", r"della malora", r"cavolo", r"porca \w+", r"accidenti a voi", r"mannaggia",
    r"ma state scherzando", r"roba da matti", r"da denuncia", r"non e possibile che",
    r"unbelievable", r"what the hell", r"the hell", r"for (?:god|heaven|christ)'?s sake",
    r"crooks?", r"cowboys", r"thanks for nothing", r"grazie per (?:niente|nulla)",
    r"are you (?:even )?(?:reading|listening)", r"copy[- ]?paste",
    r"how hard can it be", r"losing (?:my )?patience", r"lost (?:my )?patience",
    r"are you kidding", r"you(?:'re| are) kidding", r"fed up", r"had enough", r"enough is enough",
    r"ne ho abbastanza", r"mi avete stufato",
]
WEAK = [
    r"(?:e|per) la (?:second|terz|quart|quint|ennesim)a volta", r"ancora una volta",
    r"ancora non", r"non ancora", r"nessuno (?:mi )?rispond\w*", r"sempre la stessa",
    r"da (?:giorni|settimane|mesi)", r"non capisci (?:niente|nulla)", r"bot stupido",
    r"stupid[oa]", r"non funziona mai", r"ogni volta", r"di nuovo",
    r"(?:second|third|fourth|fifth|umpteenth) time", r"again and again", r"still not",
    r"still haven'?t", r"nobody (?:answers|replies|helps)", r"no one (?:answers|replies|helps)",
    r"for (?:days|weeks|months)", r"you don'?t understand", r"stupid", r"never works",
    r"every single time", r"(?:again|yet again)\s*[!?]",
    r"ennesima", r"umpteenth", r"(?:quarta|quinta|terza) (?:volta|segnalazione|chiamata)",
    r"(?:third|fourth|fifth) (?:call|complaint|message)", r"\d+ volte", r"\d+ times",
    r"come sempre", r"as usual", r"risposta automatica", r"automated (?:reply|answer)",
    r"complimenti", r"bravi", r"brilliant", r"well done", r"oh great", r"really helpful",
    r"inesistente", r"nemmeno", r"not even", r"ancora nessun\w*", r"still no\b",
    r"i'?m done",
]
_STRONG = [re.compile(rf"\b{p}") for p in STRONG]
_WEAK = [re.compile(rf"\b{p}") for p in WEAK]
_NEGATED = re.compile(r"\b(?:non sono|i'?m not|i am not|not) (?:\w+ )?(?:arrabbiat|furios|angry|"
                      r"upset|annoyed|complaining)")
_CAPS_WORD = re.compile(r"\b[A-ZÀ-Ý]{3,}\b")


@dataclass(frozen=True)
class Frustration:
    score: int
    cues: list[str] = field(default_factory=list)

    @property
    def frustrated(self) -> bool:
        return self.score >= 2


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.replace("’", "'")


def detect(text: str) -> Frustration:
    folded = _fold(text or "")
    cues: list[str] = []
    score = 0
    for pattern in _STRONG:
        m = pattern.search(folded)
        if m:
            cues.append(m.group(0))
            score += 2
    for pattern in _WEAK:
        m = pattern.search(folded)
        if m:
            cues.append(m.group(0))
            score += 1
    if re.search(r"[!?]{2,}", text or ""):
        cues.append("!!")
        score += 1
    # "non sono arrabbiato", "I'm not angry": a denied feeling is not one.
    if _NEGATED.search(folded):
        cues.append("negated")
        score = min(score, 1)
    shouted = [w for w in _CAPS_WORD.findall(text or "") if w not in {"POD", "PDR", "IBAN", "SMS"}]
    if len(shouted) >= 3:
        cues.append("CAPS")
        score += 1
    return Frustration(score, cues)

