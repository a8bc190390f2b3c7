"""LinearIntentClassifier: logistic regression on the sentence features of every featurizer.

With a few hundred examples per language, DIET (a neural network trained from scratch) was
confidently wrong on messages unlike its examples, so the fallback threshold could not tell a
near-domain request from ours, and it trailed every published system on HINT3. A linear model
over the pretrained sentence vector (bot.nlu.sentence_encoder) and the word and character
n-gram counts (Rasa's CountVectorsFeaturizer), each count block weighted by TF-IDF, gives
probabilities the FallbackClassifier can use, trains in seconds and predicts in microseconds.
Chosen by bench/hint3.py and bench/nlu_wild.py (bench/RESULTS.md).

A probability alone says which intent fits best, not whether any fits: a message unlike every
example (a question the assistant does not serve) still shares out its probability among our
intents, sometimes most of it on one. So an intent's confidence is the geometric mean of its
probability and how close the message is to that intent's nearest example (the cosine
similarity of the sentence vectors, mapped linearly from `similarity_floor` = 0 to
`similarity_full` = 1): a message far from everything trained gets a low confidence and goes to
the fallback. The confidences no longer sum to 1. On HINT3 this raised SOFMattress's best
accuracy from 0.688 to 0.728, above the best published system (0.723), and on our Italian
out-of-scope set the share handled from 0.845 to 0.859 (bench/RESULTS.md).

It reads the sentence-level features of the message text only: every featurizer in front of it
must give them (the count featurizers and the sentence encoder do).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text

import joblib
import numpy as np
import scipy.sparse
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import (
    FEATURE_TYPE_SENTENCE,
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.linear_model import LogisticRegression

log = logging.getLogger(__name__)

MODEL_FILE = "linear_intent_classifier.joblib"


def _sentence_blocks(message: Message) -> Dict[str, Any]:
    """The message text's sentence features, one block per featurizer (by its name)."""
    return {f.origin if isinstance(f.origin, str) else "+".join(f.origin): f.features
            for f in message.features
            if f.attribute == TEXT and f.type == FEATURE_TYPE_SENTENCE}


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class LinearIntentClassifier(GraphComponent, IntentClassifier):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            # inverse regularisation strength (chosen on HINT3, bench/RESULTS.md)
            "C": 10.0,
            # weigh intents with few examples as much as those with many
            "class_weight": "balanced",
            "ranking_length": 10,
            "random_seed": 42,
            # cosine similarity to an intent's nearest example (sentence vectors) at which its
            # confidence is 0 and from which only the probability counts; `None`: probability
            # only (chosen on HINT3 and the held-out sets, bench/RESULTS.md)
            "similarity_floor": 0.25,
            "similarity_full": 0.6,
        }

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage,
                 resource: Resource, model: Optional[Dict[str, Any]] = None) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        # {"blocks": [featurizer names], "tfidf": {name: TfidfTransformer}, "widths": {name:
        # width}, "clf": estimator, "dense": [dense block names], "examples": {intent: unit
        # sentence vectors of its examples}}
        self.model = model
        self._by_feature: Optional[np.ndarray] = None  # the coefficients, feature by feature
        self._examples: Optional[tuple] = None  # (examples' vectors, where each intent starts)
        self._idfs: Dict[str, np.ndarray] = {}  # each count block's idf weights (`_idf`)

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "LinearIntentClassifier":
        return cls(config, model_storage, resource)

    def _matrix(self, messages: List[Message], blocks: List[str],
                tfidf: Dict[str, TfidfTransformer],
                widths: Dict[str, int]) -> scipy.sparse.csr_matrix:
        """One row per message; a featurizer that gave a message nothing (a message of
        whitespace or punctuation only has no tokens to count) contributes zeros."""
        columns = []
        per_message = [_sentence_blocks(m) for m in messages]
        for name in blocks:
            rows = [features.get(name) for features in per_message]
            width = widths[name]
            block = scipy.sparse.vstack([
                scipy.sparse.csr_matrix(r.reshape(1, -1)) if r is not None
                else scipy.sparse.csr_matrix((1, width)) for r in rows]).tocsr()
            if name in tfidf:
                block = tfidf[name].transform(block)
            columns.append(block)
        return scipy.sparse.hstack(columns).tocsr()

    @staticmethod
    def _unit_vectors(messages: List[Message], dense: List[str],
                      widths: Dict[str, int]) -> np.ndarray:
        """The dense (sentence encoder) blocks of each message, joined, at unit length (zeros
        where a featurizer gave a message nothing)."""
        per_message = [_sentence_blocks(m) for m in messages]
        vectors = np.hstack([np.vstack([
            np.asarray(f[name]).reshape(1, -1) if name in f else np.zeros((1, widths[name]))
            for f in per_message]) for name in dense])
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)

    def _closeness(self, message: Message, classes: np.ndarray) -> Optional[np.ndarray]:
        """Per intent, 0-1: how near the message is to the intent's nearest example (None
        without a sentence vector or a similarity floor)."""
        dense, examples = self.model.get("dense"), self.model.get("examples")
        floor, full = self.config["similarity_floor"], self.config["similarity_full"]
        if not dense or not examples or floor is None:
            return None
        if self._examples is None:  # every example in one matrix, grouped by intent
            stacked = [np.asarray(examples[c], dtype=np.float32) for c in classes]
            starts = np.cumsum([0] + [len(e) for e in stacked[:-1]])
            self._examples = (np.vstack(stacked), starts)
        matrix, starts = self._examples
        vector = self._unit_vectors([message], dense, self.model["widths"])[0]
        # one product for all examples (in float32, as they are stored), then each intent's best
        nearest = np.maximum.reduceat(matrix @ vector.astype(np.float32), starts)
        return np.clip((nearest.astype(np.float64) - floor) / (full - floor), 0.0, 1.0)

    def train(self, training_data: TrainingData) -> Resource:
        examples = [m for m in training_data.intent_examples if _sentence_blocks(m)]
        labels = [m.get(INTENT) for m in examples]
        if len(set(labels)) < 2:
            log.warning("LinearIntentClassifier needs examples of two intents at least; "
                        "it will predict nothing.")
            return self._resource
        features = [_sentence_blocks(m) for m in examples]
        # every featurizer's block, with a sample of it (its width, sparse or dense)
        samples = {name: block for f in reversed(features) for name, block in f.items()}
        blocks = sorted(samples)
        widths = {name: samples[name].shape[-1] for name in blocks}
        tfidf: Dict[str, TfidfTransformer] = {}
        for name in blocks:
            if scipy.sparse.issparse(samples[name]):  # counts: weighted by how telling a term is
                counts = self._matrix(examples, [name], {}, widths)
                tfidf[name] = TfidfTransformer(sublinear_tf=True).fit(counts)
        clf = LogisticRegression(C=self.config["C"], class_weight=self.config["class_weight"],
                                 max_iter=5000, random_state=self.config["random_seed"])
        clf.fit(self._matrix(examples, blocks, tfidf, widths), labels)
        # the sentence vectors of the examples, per intent, for the closeness of a message
        dense = [name for name in blocks if not scipy.sparse.issparse(samples[name])]
        examples_of = {}
        if dense:
            vectors = self._unit_vectors(examples, dense, widths).astype(np.float32)
            examples_of = {c: vectors[np.array(labels) == c] for c in clf.classes_}
        self.model = {"blocks": blocks, "tfidf": tfidf, "widths": widths, "clf": clf,
                      "dense": dense, "examples": examples_of}
        self._by_feature = self._examples = None
        self._idfs = {}
        with self._model_storage.write_to(self._resource) as directory:
            joblib.dump(self.model, directory / MODEL_FILE)
        return self._resource

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> "LinearIntentClassifier":
        try:
            with model_storage.read_from(resource) as directory:
                model = joblib.load(directory / MODEL_FILE)
        except (ValueError, FileNotFoundError):  # trained without two intents
            model = None
        return cls(config, model_storage, resource, model)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            if self.model is None or not _sentence_blocks(message):
                message.set(INTENT, {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0},
                            add_to_output=True)
                message.set(INTENT_RANKING_KEY, [], add_to_output=True)
                continue
            clf = self.model["clf"]
            probabilities = self._probabilities(message)
            closeness = self._closeness(message, clf.classes_)
            confidences = (probabilities if closeness is None
                           else np.sqrt(probabilities * closeness))
            order = np.argsort(confidences)[::-1][: self.config["ranking_length"]]
            ranking = [{INTENT_NAME_KEY: str(clf.classes_[i]),
                        PREDICTED_CONFIDENCE_KEY: float(confidences[i])} for i in order]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        return messages

    def _idf(self, name: str, tfidf: TfidfTransformer) -> Optional[np.ndarray]:
        """A block's idf weights, taken once: scikit-learn's `idf_` is a property that sums its
        diagonal matrix at every read (0.3 ms, three blocks a message)."""
        if not tfidf.use_idf:
            return None
        if name not in self._idfs:
            self._idfs[name] = np.asarray(tfidf.idf_, dtype=np.float64)
        return self._idfs[name]

    def _probabilities(self, message: Message) -> np.ndarray:
        """`predict_proba` of one message, computed straight from its features: a message has a
        few dozen n-grams out of tens of thousands, and building scipy matrices (one per block,
        stacked, weighted) to multiply them cost more than the rest of the classifier's work
        (bench/RESULTS.md, "Where a turn's time goes"). The same numbers as `predict_proba` of
        `_matrix` (tests/test_nlu_components.py checks it); any other estimator goes that way."""
        clf = self.model["clf"]
        if not (isinstance(clf, LogisticRegression) and len(clf.classes_) > 2
                and clf.multi_class in ("auto", "multinomial")):
            return clf.predict_proba(self._matrix([message], self.model["blocks"],
                                                  self.model["tfidf"], self.model["widths"]))[0]
        features = _sentence_blocks(message)
        if self._by_feature is None:  # a row per feature: a message's few rows read together
            self._by_feature = np.ascontiguousarray(clf.coef_.T)
        weights = self._by_feature
        scores = clf.intercept_.copy()
        offset = 0
        for name in self.model["blocks"]:
            width = self.model["widths"][name]
            block = features.get(name)
            if block is not None:
                if scipy.sparse.issparse(block):
                    row = block.tocoo(copy=True)
                    row.sum_duplicates()
                    row.eliminate_zeros()
                    columns, values = row.col, row.data.astype(np.float64)
                    tfidf = self.model["tfidf"].get(name)
                    if tfidf is not None:  # TfidfTransformer.transform of one row
                        values = _weighted(values, columns, tfidf, self._idf(name, tfidf))
                    scores += values @ weights[offset + columns]
                else:
                    scores += np.ravel(block) @ weights[offset:offset + width]
            offset += width
        scores -= scores.max()  # softmax, as multinomial predict_proba
        exponentials = np.exp(scores)
        return exponentials / exponentials.sum()


def _weighted(values: np.ndarray, columns: np.ndarray, tfidf: TfidfTransformer,
              idf: Optional[np.ndarray]) -> np.ndarray:
    """One row's counts through a fitted TfidfTransformer (sublinear tf, idf, l2 norm); `idf`
    is its `idf_` (None without idf weighting)."""
    if tfidf.sublinear_tf:
        values = np.log(values) + 1.0
    if idf is not None:
        values = values * idf[columns]
    if tfidf.norm == "l2":
        norm = np.sqrt(np.dot(values, values))
        values = values / norm if norm > 0 else values
    elif tfidf.norm == "l1":
        norm = np.abs(values).sum()
        values = values / norm if norm > 0 else values
    return values
