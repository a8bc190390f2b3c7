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
    assert len(ranking) == 3 and abs(sum(r["confidence"] for r in ranking) - 1.0) < 1e-6
    assert ranking == sorted(ranking, key=lambda r: -r["confidence"])


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
