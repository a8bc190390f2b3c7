"""The NLU's own components, trained by Rasa on a small data set: the pretrained sentence
encoder (bot.nlu.sentence_encoder) and the linear intent classifier (bot.nlu.linear_classifier)
that replaced DIET. The trained model's figures on held-out sets are in tests/test_nlu.py and
bench/nlu_wild.py; here: what each component gives, that a model survives being saved and
loaded, and that the encoder knows words the examples never used, in both languages."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from bot.nlu.sentence_encoder import DIMENSIONS, encode

NLU = """version: "3.1"
nlu:
- intent: check_bill
  examples: |
    - quanto devo pagare?
    - a quanto ammonta la mia bolletta?
    - how much do I owe?
    - what is my bill amount?
- intent: report_outage
  examples: |
    - non ho la corrente
    - è saltata la luce in casa
    - my power is out
    - there is no electricity at home
- intent: greet
  examples: |
    - ciao
    - buongiorno
    - hello
    - good morning
"""

CONFIG = """recipe: default.v1
language: it
assistant_id: test
pipeline:
  - name: WhitespaceTokenizer
  - name: CountVectorsFeaturizer
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 2
    max_ngram: 4
  - name: bot.nlu.sentence_encoder.SentenceEncoderFeaturizer
  - name: bot.nlu.linear_classifier.LinearIntentClassifier
policies: []
"""


def test_the_encoder_places_a_translation_nearer_than_another_topic():
    vectors = encode(["quanto devo pagare per la bolletta?", "how much is my bill?",
                      "non ho la corrente in casa", ""])
    assert vectors.shape == (4, DIMENSIONS)
    assert np.allclose(np.linalg.norm(vectors[:3], axis=1), 1.0, atol=1e-3)
    assert not vectors[3].any()  # an empty text is not a sentence
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


@pytest.fixture(scope="module")
def tiny_agent(tmp_path_factory):
    from rasa.core.agent import Agent
    from rasa.model_training import train_nlu

    work = tmp_path_factory.mktemp("tiny-nlu")
    (work / "nlu.yml").write_text(NLU)
    (work / "config.yml").write_text(CONFIG)
    model = train_nlu(str(work / "config.yml"), str(work / "nlu.yml"), str(work / "models"))
    return Agent.load(model_path=model), Path(model)


def _parse(agent, text: str) -> dict:
    return asyncio.run(agent.parse_message(text))


@pytest.mark.parametrize("text,intent", [
    # words none of the examples has: the pretrained vector carries the meaning
    ("la fattura di questo mese a quanto arriva?", "check_bill"),
    ("blackout in my street since this morning", "report_outage"),
    ("salve!", "greet"),
])
def test_a_saved_and_loaded_model_classifies_words_it_never_saw(tiny_agent, text, intent):
    agent, model = tiny_agent
    assert model.exists()
    parsed = _parse(agent, text)
    assert parsed["intent"]["name"] == intent, parsed["intent_ranking"]
    ranking = parsed["intent_ranking"]
    assert [r["name"] for r in ranking][0] == intent
    assert len(ranking) == 3 and all(0.0 <= r["confidence"] <= 1.0 for r in ranking)
    assert ranking == sorted(ranking, key=lambda r: -r["confidence"])


def test_a_message_unlike_every_example_gets_a_low_confidence(tiny_agent):
    """The confidence includes the closeness to the nearest example: a question nothing in the
    training data resembles falls far below one that says an example in other words."""
    agent, _ = tiny_agent
    near = _parse(agent, "how much do I have to pay?")["intent"]
    far = _parse(agent, "which football team won the league in 1998?")["intent"]
    assert near["name"] == "check_bill" and near["confidence"] > 0.6, near
    assert far["confidence"] < 0.35, far


def _classifier(config: dict):
    from unittest.mock import MagicMock

    from bot.nlu.linear_classifier import LinearIntentClassifier

    return LinearIntentClassifier(config, MagicMock(), MagicMock())


def _sentence_message(vector: list[float]):
    from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, TEXT
    from rasa.shared.nlu.training_data.features import Features
    from rasa.shared.nlu.training_data.message import Message

    message = Message(data={TEXT: "x"})
    message.add_features(Features(np.array([vector], dtype=np.float32),
                                  FEATURE_TYPE_SENTENCE, TEXT, "encoder"))
    return message


def test_closeness_maps_the_nearest_examples_cosine_from_floor_to_full():
    classifier = _classifier({"similarity_floor": 0.3, "similarity_full": 0.6})
    classifier.model = {"dense": ["encoder"], "widths": {"encoder": 2},
                        "examples": {"a": np.array([[1.0, 0.0], [0.0, 1.0]]),
                                     "b": np.array([[-1.0, 0.0]])}}
    # cosine 0.8 to a's second example (at or over `full`: 1) and -0.6 to b's (under: 0)
    closeness = classifier._closeness(_sentence_message([0.6, 0.8]), np.array(["a", "b"]))
    assert closeness.tolist() == [1.0, 0.0]
    # cosine 0.45 to a's nearest example: half way between floor and full
    half = _sentence_message([0.45, -np.sqrt(1 - 0.45 ** 2)])
    assert classifier._closeness(half, np.array(["a"]))[0] == pytest.approx(0.5, abs=1e-6)


def test_without_a_floor_the_confidence_is_the_probability_alone():
    classifier = _classifier({"similarity_floor": None})
    classifier.model = {"dense": ["encoder"], "widths": {"encoder": 2},
                        "examples": {"a": np.array([[1.0, 0.0]])}}
    assert classifier._closeness(_sentence_message([0.0, 1.0]), np.array(["a"])) is None


@pytest.mark.parametrize("text,tokens", [
    ("Buongiorno, dobbiamo comunicare le letture", ["dobbiamo", "comunicare", "le", "letture"]),
    ("hi, John here, quick one: what do I owe?",
     ["John", "here", "quick", "one", "what", "do", "I", "owe"]),
    ("Good  morning! my power is out", ["my", "power", "is", "out"]),
    # a greeting alone, or with a name or two words, is the greeting
    ("ciao", ["ciao"]),
    ("ciao sono Maria", ["ciao", "sono", "Maria"]),
    ("buongiorno a tutti", ["buongiorno", "a", "tutti"]),
    # a word that only begins like a greeting is not one
    ("hilarious bill today here", ["hilarious", "bill", "today", "here"]),
])
def test_the_tokenizer_leaves_out_the_greeting_a_request_opens_with(text, tokens):
    from rasa.shared.nlu.constants import TEXT
    from rasa.shared.nlu.training_data.message import Message

    from bot.nlu.greeting_tokenizer import GreetingTokenizer

    tokenizer = GreetingTokenizer(GreetingTokenizer.get_default_config())
    message = Message(data={TEXT: text})
    assert [t.text for t in tokenizer.tokenize(message, TEXT)] == tokens
    assert message.get(TEXT) == text  # the text itself, for the entity extractors, is unchanged



def test_one_message_is_scored_as_scikit_learn_scores_it(tiny_agent):
    """The classifier scores a message straight from its features (a turn's cost); the
    probabilities are those of scikit-learn's `predict_proba` on the whole feature matrix, for
    messages with known words, unknown words, a greeting only and no word at all."""
    from bot.nlu.linear_classifier import LinearIntentClassifier

    agent, _ = tiny_agent
    [classifier] = [node._component for node in
                    agent.processor.graph_runner._instantiated_nodes.values()
                    if isinstance(node._component, LinearIntentClassifier)]
    scored = []
    fast = classifier._probabilities

    def both(message):
        model = classifier.model
        scored.append((fast(message), model["clf"].predict_proba(classifier._matrix(
            [message], model["blocks"], model["tfidf"], model["widths"]))[0]))
        return scored[-1][0]

    classifier._probabilities = both
    try:
        for text in ("quanto devo pagare la bolletta di ottobre?", "zzqx blorf", "ciao",
                     "my power is out, my power is OUT", "??", "la luce la luce la luce"):
            _parse(agent, text)
    finally:
        classifier._probabilities = fast
    assert len(scored) >= 5
    for ours, theirs in scored:
        assert np.allclose(ours, theirs, rtol=0, atol=1e-12), (ours, theirs)


@pytest.mark.parametrize("text,read", [
    ("PERCHE LA BOLLETTA E COSI ALTA??? 150 EURO", "perche la bolletta e cosi alta??? 150 euro"),
    ("PAPERLESS BILLS PLZ", "paperless bills plz"),
    ("Il codice è C1000003, la bolletta di Ottobre",
     "Il codice è C1000003, la bolletta di Ottobre"),
    ("ciao", "ciao"), ("12345", "12345"), ("", ""),
])
def test_a_message_in_capitals_is_read_as_lower_case(text, read):
    from bot.nlu.sentence_encoder import unshouted

    assert unshouted(text) == read


def test_shouting_is_as_near_its_example_as_the_same_words_in_lower_case():
    from bot.nlu.sentence_encoder import unshouted

    shouted, example = "PERCHE LA BOLLETTA E COSI ALTA", "perché la bolletta è così alta?"
    raw, read, reference = encode([shouted, unshouted(shouted), example])
    assert read @ reference > raw @ reference + 0.3
