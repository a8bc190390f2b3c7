"""OtherCompanyGuard: a question about another company's bill or contract is out of scope.

"my friend is with Edison and their bill is way higher than mine, why is that?", "la bolletta
di mia madre con Enel è altissima": the classifier sees a bill question and the bot would
explain the customer's own bill, confidently and wrongly. When a message names another energy
supplier, water or telecom company and was classified as a question about an account (bills,
readings, contract, payments) or fell to the fallback, this component predicts `out_of_scope`
in front of the classifier's ranking, which stays available: the reply says honestly what the
assistant can and cannot do. A message that also speaks of Luce Nord ("I left Enel for Luce
Nord, why is my first bill so high?", "sono passato da Enel a voi") keeps its intent.
"""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.companies import ACCOUNT_INTENTS, names_other_company
from bot.nlu.ranking import predict_in_front


# Other Italian energy suppliers, water utilities and telecom operators, as customers write them
# (folded: lower case, no accents or punctuation).
@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class OtherCompanyGuard(GraphComponent, IntentClassifier):
    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "OtherCompanyGuard":
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            intent = message.get(INTENT) or {}
            if text.startswith("/") or intent.get("name") not in ACCOUNT_INTENTS:
                continue
            if not names_other_company(text):
                continue
            predict_in_front(message, "out_of_scope")
        return messages
