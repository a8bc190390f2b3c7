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

# Other Italian energy suppliers, water utilities and telecom operators, as customers write them
# (folded: lower case, no accents or punctuation).
OTHER_COMPANIES = (
    "enel", "enel energia", "servizio elettrico nazionale", "edison", "a2a", "eni",
    "eni plenitude", "plenitude", "hera", "iren", "acea", "sorgenia", "engie", "iberdrola",
    "eon", "illumia", "estra", "dolomiti energia", "axpo", "optima", "wekiwi",
    "octopus", "octopus energy", "enegan", "alperia", "agsm", "duferco", "pulsee", "nen",
    "e distribuzione", "edistribuzione", "italgas", "areti", "unareti", "acquedotto pugliese",
    "smat", "metropolitana milanese", "abbanoa", "publiacqua", "gori",
    "telecom italia", "vodafone", "windtre", "wind tre", "iliad", "fastweb", "tiscali",
    "ho mobile", "kena mobile", "poste mobile", "postemobile", "very mobile",
)
# Luce Nord, or "you", named beside the other company: the customer speaks of their own account
# with us ("sono passato da Enel a voi").
OURS = re.compile(r"\b(?:luce\s*nord|con voi|da voi|a voi|vostr[aoie]|with you|to you|from you)\b")
_NAMES = re.compile(
    r"\b(?:" + "|".join(sorted(map(re.escape, OTHER_COMPANIES), key=len, reverse=True)) + r")\b")
# Questions about an account: about another company's account they are not ours to answer.
ACCOUNT_INTENTS = frozenset({
    "check_bill", "explain_bill", "pay_bill", "contract_info", "activate_ebill", "ticket_status",
    DEFAULT_NLU_FALLBACK_INTENT_NAME,
})


def names_other_company(text: Optional[Text]) -> bool:
    """Whether the message names another company and not Luce Nord (or "you")."""
    folded = fold(text or "")
    return bool(_NAMES.search(folded)) and not OURS.search(folded)


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
