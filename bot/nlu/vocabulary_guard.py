"""VocabularyGuard: sends gibberish and other languages to the NLU fallback.

A classifier trained on our examples can be confidently wrong on text made of words it has never
seen (DIET, the classifier before bot.nlu.linear_classifier, took "zxqv blorp fnord" for a
"report_outage" at 0.89). This component remembers the words of the training data and, when
too few of a message's words are known (allowing one typo per word), predicts `nlu_fallback`
in front of the classifier's ranking, which stays available to whoever wants it.
Messages without words (codes, numbers, e-mails, emoji) are left to the classifier.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

WORD = re.compile(r"[^\W\d_]{2,}")
FILE = "vocabulary.json"


def words(text: Optional[Text]) -> List[Text]:
    return WORD.findall((text or "").lower())


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class VocabularyGuard(GraphComponent, IntentClassifier):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"min_known_share": 0.5, "typo_cutoff": 0.8}

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
                 vocabulary: Optional[set] = None) -> None:
        self.config = {**self.get_default_config(), **config}
        self._storage, self._resource = model_storage, resource
        self.vocabulary = vocabulary or set()
        self._sorted = sorted(self.vocabulary)

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "VocabularyGuard":
        return cls(config, model_storage, resource)

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> "VocabularyGuard":
        try:
            with model_storage.read_from(resource) as directory:
                vocabulary = set(json.loads((directory / FILE).read_text()))
        except (ValueError, FileNotFoundError):
            vocabulary = set()
        return cls(config, model_storage, resource, vocabulary)

    def train(self, training_data: TrainingData) -> Resource:
        vocabulary = set()
        for example in training_data.training_examples:
            vocabulary.update(words(example.get(TEXT)))
        with self._storage.write_to(self._resource) as directory:
            (directory / FILE).write_text(json.dumps(sorted(vocabulary)))
        self.vocabulary, self._sorted = vocabulary, sorted(vocabulary)
        return self._resource

    def known_share(self, text: Optional[Text]) -> Optional[float]:
        """The share of the message's words the model knows; None when it has no words."""
        found = words(text)
        if not found:
            return None
        cutoff = self.config["typo_cutoff"]
        known = sum(
            1 for w in found
            if w in self.vocabulary
            or (len(w) >= 4 and difflib.get_close_matches(w, self._sorted, n=1, cutoff=cutoff))
        )
        return known / len(found)

    def process(self, messages: List[Message]) -> List[Message]:
        if not self.vocabulary:
            return messages
        for message in messages:
            text = message.get(TEXT) or ""
            if text.startswith("/"):
                continue  # a button payload, not typed text
            share = self.known_share(text)
            if share is None or share >= self.config["min_known_share"]:
                continue
            fallback = {"name": DEFAULT_NLU_FALLBACK_INTENT_NAME, "confidence": 1.0 - share}
            if (message.get(INTENT) or {}).get("name") != DEFAULT_NLU_FALLBACK_INTENT_NAME:
                message.data.setdefault(INTENT_RANKING_KEY, [])
                message.data[INTENT_RANKING_KEY].insert(0, fallback)
            message.data[INTENT] = fallback
        return messages
