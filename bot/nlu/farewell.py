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

from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.farewells import NOT_A_REQUEST, closes_with_farewell, opens_with_greeting
from bot.nlu.ranking import predict_in_front


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

