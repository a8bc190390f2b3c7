"""FarewellDetector: a message that ends with a farewell is a goodbye.

"grazie di tutto, ciao", "ok allora la pago stasera, ciao", "vado a vedere il contatore e vi
riscrivo. ciao": the classifier sees thanks, a remark or nothing it knows, and the customer who
is leaving gets "you're welcome" or "I did not understand" instead of the goodbye (and the rating
question). When the message closes with a farewell and was not classified as a request of its
own, this component predicts `goodbye`, in front of the classifier's ranking, which stays
available. A request that ends with "ciao" ("quanto devo pagare? ciao") keeps its intent.

A bare "ciao" (or "hello") is both a greeting and a farewell, and the classifier can split its
confidence between the two and fall under the fallback threshold: the customer who opens with
"ciao!" would get "I did not understand". A greeting that the classifier could not place, alone
or with a name or two words after it ("ciao Sportello", "buongiorno a tutti"), is the greeting.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.ranking import predict_in_front
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


def closes_with_farewell(text: Optional[Text]) -> bool:
    """Whether the message ends with a farewell after something else ("ok grazie, ciao"); a
    farewell alone is left to the classifier ("ciao" alone opens most conversations)."""
    folded = fold(text or "")
    match = _ENDS_WITH_FAREWELL.search(folded)
    return bool(match) and match.start() > 0


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class FarewellDetector(GraphComponent, IntentClassifier):
    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "FarewellDetector":
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            intent = message.get(INTENT) or {}
            if text.startswith("/") or intent.get("name") not in NOT_A_REQUEST:
                continue
            if (intent.get("name") == DEFAULT_NLU_FALLBACK_INTENT_NAME
                    and opens_with_greeting(text)):
                predict_in_front(message, "greet")
            elif intent.get("name") != "goodbye" and closes_with_farewell(text):
                predict_in_front(message, "goodbye")
        return messages

