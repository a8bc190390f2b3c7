"""FrustrationDetector: a frustrated or angry customer is handed to a person.

Runs after the classifiers. When `bot.handover.frustration` finds the message frustrated, the
predicted intent becomes `request_human` (so every rule that honours a request for a person,
in or out of a form, applies), and the parse data keeps what was found and what the classifier
had understood under the `frustration` key, for the handover's reason and the agent's context.
"""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.handover.frustration import detect

TARGET_INTENT = "request_human"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class FrustrationDetector(GraphComponent, IntentClassifier):
    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "FrustrationDetector":
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT)
            if not text or text.startswith("/"):
                continue
            found = detect(text)
            if not found.frustrated:
                continue
            understood = message.get(INTENT) or {}
            message.set("frustration", {"score": found.score, "cues": found.cues,
                                        "understood": understood}, add_to_output=True)
            message.set(INTENT, {"name": TARGET_INTENT, "confidence": 1.0}, add_to_output=True)
            ranking = [r for r in message.get(INTENT_RANKING_KEY) or []
                       if r.get("name") != TARGET_INTENT]
            message.set(INTENT_RANKING_KEY, [{"name": TARGET_INTENT, "confidence": 1.0}] + ranking,
                        add_to_output=True)
        return messages
