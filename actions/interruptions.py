"""What a message inside a form means when it is not simply the answer to the question asked:
the customer stops, says goodbye, makes a remark, or asks for something else. The form's
validation (actions.common.FormValidation) acts on it, so no form can trap a customer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, Optional, Set

from rasa_sdk import Tracker

from actions.rasa_nlu import parse
from bot.nlu.farewells import NOT_A_REQUEST, closes_with_farewell
from bot.skills import SKILL_ACTIONS
from bot.stopwords import (
    is_stop_phrase,
    remainder_after,
    remainder_after_stop,
    request_after_stop,
    starts_with_stop,
)

# Below this confidence a message inside a form is taken as an (attempted) answer.
DIGRESSION_CONFIDENCE = 0.6
# A skill ranked second after a remark ("thanks, also...") counts from this confidence.
RUNNER_UP_CONFIDENCE = 0.3
# A question that names another skill is that request from the NLU fallback threshold up
# (config.yml): a question mark is never a meter reading or an e-mail address.
QUESTION_CONFIDENCE = 0.5
# After a stop, a question in the same message is a request: a lower bar for its skill.
AFTER_STOP_CONFIDENCE = 0.15
STOP_INTENTS = {"cancel"}
# Remarks a customer opens with before asking something else ("thanks, also when does my
# contract end?"), folded as bot.stopwords.fold does.
REMARKS = frozenset({
    "thanks", "thank you", "thanks a lot", "ok thanks", "great", "great thanks", "cool",
    "perfect", "nice", "grazie", "grazie mille", "ok grazie", "perfetto", "ottimo", "bene",
    "va bene", "benissimo", "ok perfetto",
})
# A free-text answer (a complaint) that opens with "lascia perdere" stops the task only when it
# is short: "basta, è la terza volta che mi staccate la luce" is the complaint itself.
SHORT_MESSAGE_WORDS = 8
# Answered inside the form, which then asks its question again.
ASIDES = {
    "help": "utter_help",
    "bot_challenge": "utter_iamabot",
    "thank_you": "utter_you_are_welcome",
    "out_of_scope": "utter_out_of_scope",
    "greet": None,
}


@dataclass(frozen=True)
class Interruption:
    """kind: "stop" (with `intent`: the request that follows the stop), "goodbye", "aside",
    "same" (the form's own request again), "skill" (another request: `intent`), or "language"
    (a change of language)."""

    kind: str
    intent: Optional[str] = None
    response: Optional[str] = None


def slot_entities(domain: Dict[str, Any], slot: str) -> Set[str]:
    """The entities that fill `slot` (its from_entity mappings)."""
    mappings = ((domain.get("slots") or {}).get(slot) or {}).get("mappings") or []
    return {m["entity"] for m in mappings if m.get("type") == "from_entity" and m.get("entity")}


def has_entity(tracker: Tracker, names: Iterable[str]) -> bool:
    names = set(names)
    return any(e.get("entity") in names for e in tracker.latest_message.get("entities") or [])


def request_after_remark(tracker: Tracker, top: Optional[str],
                         own_intent: Optional[str]) -> Optional[str]:
    """The skill asked for after a remark (thanks, hello) that the classifier ranked first:
    the runner-up, when it is another skill and not a long shot."""
    if top not in ASIDES:
        return None
    ranking = [r for r in tracker.latest_message.get("intent_ranking") or []
               if r.get("name") not in ("nlu_fallback", top)]
    if not ranking:
        return None
    second = ranking[0]
    name = second.get("name")
    if (name in SKILL_ACTIONS and name not in ("request_human", own_intent)
            and float(second.get("confidence") or 0) >= RUNNER_UP_CONFIDENCE):
        return name
    return None


def request_after(tracker: Tracker, text: str, own_intent: Optional[str]) -> Optional[str]:
    """The request that follows a stop in the same message ("no wait, cancel that. how much is
    my bill?"): the best-ranked other skill, when the message goes on with a question."""
    if not request_after_stop(text):
        return None
    for ranked in tracker.latest_message.get("intent_ranking") or []:
        name = ranked.get("name")
        if name not in SKILL_ACTIONS or name in ("request_human", own_intent):
            continue  # the stop itself, a remark, or the task being stopped
        return name if float(ranked.get("confidence") or 0) >= AFTER_STOP_CONFIDENCE else None
    return None


async def request_in_remainder(tracker: Tracker, own_intent: Optional[str],
                               after_remark: bool = False) -> Optional[str]:
    """The request in what follows a stop (or, with `after_remark`, a remark such as "thanks"),
    classified on its own: "no wait, cancel that. how much is my bill?" is `cancel` as a whole,
    its second sentence `check_bill`."""
    text = tracker.latest_message.get("text") or ""
    rest = remainder_after(text, REMARKS) if after_remark else remainder_after_stop(text)
    if not rest or (after_remark and "?" not in rest):
        return None
    parsed = await parse(rest)
    intent = (parsed or {}).get("intent") or {}
    name = intent.get("name")
    if name not in SKILL_ACTIONS or name in ("request_human", own_intent):
        return None
    return name if float(intent.get("confidence") or 0) >= DIGRESSION_CONFIDENCE else None


def says_stop(tracker: Tracker) -> bool:
    """Whether a message asked for free text is an explicit stop rather than the text: a stop
    phrase alone, or a short message that opens with one or is classified as cancel."""
    text = tracker.latest_message.get("text") or ""
    if is_stop_phrase(text):
        return True
    if len(text.split()) > SHORT_MESSAGE_WORDS:
        return False
    intent = tracker.latest_message.get("intent") or {}
    return starts_with_stop(text) or (intent.get("name") in STOP_INTENTS and
                                      float(intent.get("confidence") or 0) >= DIGRESSION_CONFIDENCE)


def is_question(text: str) -> bool:
    """A short message or one with a question mark: "a che punto è il mio reclamo?" asks, a
    paragraph about a technician who never came describes."""
    return "?" in text or len(text.split()) <= SHORT_MESSAGE_WORDS + 2


def classify(tracker: Tracker, domain: Dict[str, Any], own_intent: Optional[str],
             answers: bool) -> Optional[Interruption]:
    """The interruption in the latest message, or None when it is (an attempt at) an answer.

    `answers` says whether the message carries a value for the slot being asked (an entity of
    that slot, a number where a number is asked): a correction such as "no sorry, it's 5192"
    is an answer whatever intent it was classified as.
    """
    text = tracker.latest_message.get("text") or ""
    if text.startswith("/"):  # a button payload is an answer or a request of its own
        return None
    intent = tracker.latest_message.get("intent") or {}
    name, confidence = intent.get("name"), float(intent.get("confidence") or 0)
    if (starts_with_stop(text) or name in STOP_INTENTS) and closes_with_farewell(text):
        return Interruption("goodbye")  # "actually forget it, bye"
    if is_stop_phrase(text) or (name in STOP_INTENTS and confidence >= DIGRESSION_CONFIDENCE
                                and not answers):
        return Interruption("stop", request_after(tracker, text, own_intent))
    if answers:
        return None
    if closes_with_farewell(text) and (name in NOT_A_REQUEST or name == own_intent
                                       or confidence < DIGRESSION_CONFIDENCE):
        # "ah no il contatore è in cantina, vado a vedere e vi riscrivo. ciao"
        return Interruption("goodbye")
    if ("?" in text and name in SKILL_ACTIONS and name not in ("request_human", own_intent)
            and QUESTION_CONFIDENCE <= confidence < DIGRESSION_CONFIDENCE):
        # "thanks, also can you tell me when my contract ends?"
        return Interruption("skill", name)
    if confidence < DIGRESSION_CONFIDENCE or name in ASIDES:
        # "thanks, also when does my contract end?": a remark, then the real request
        second = request_after_remark(tracker, name, own_intent)
        if second is not None:
            return Interruption("skill", second)
    if starts_with_stop(text) and name != "request_human":
        # "lascia stare, quanto devo pagare?": the task stops, the new request is served
        if name in SKILL_ACTIONS and confidence >= DIGRESSION_CONFIDENCE and name != own_intent:
            return Interruption("stop", name)
        return Interruption("stop", request_after(tracker, text, own_intent))
    if name in ASIDES:  # cheap when wrong: answered, then the question again
        return Interruption("aside", name, ASIDES[name])
    if confidence < DIGRESSION_CONFIDENCE:
        return None
    if name == "goodbye":
        return Interruption("goodbye")
    if name == "change_language":
        return Interruption("language", name)
    if name == own_intent:
        return Interruption("same", name)
    if name in SKILL_ACTIONS and name != "request_human":  # a person: the forms' own rules
        return Interruption("skill", name)
    return None
