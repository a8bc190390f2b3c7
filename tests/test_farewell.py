"""bot/nlu/farewell.py: a message that closes with a farewell is a goodbye, unless it is a
request of its own."""

from __future__ import annotations

import pytest
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.farewell import FarewellDetector
from bot.nlu.farewells import closes_with_farewell


@pytest.mark.parametrize("text", [
    "ok grazie di tutto, ciao", "grazie ciao", "ok allora la pago stasera, ciao",
    "ah no il contatore e in cantina, vado a vedere e vi riscrivo. ciao",
    "Va bene così, ARRIVEDERCI!", "ok thanks, bye", "that's all, have a nice day",
    "perfetto grazie, buona giornata",
])
def test_a_message_closing_with_a_farewell(text):
    assert closes_with_farewell(text)


@pytest.mark.parametrize("text", [
    "ciao", "bye", "ciao, vorrei pagare la bolletta", "hi, bye the way my bill is wrong",
    "grazie", "la bolletta di ciaociao", "", "buona giornata a lei, una domanda sulla bolletta",
])
def test_a_message_that_does_not(text):
    assert not closes_with_farewell(text)


def message(text: str, intent: str, confidence: float = 0.7) -> Message:
    ranking = [{"name": intent, "confidence": confidence}]
    return Message(data={"text": text, "intent": ranking[0], "intent_ranking": list(ranking)})


@pytest.mark.parametrize("intent", ["thank_you", "nlu_fallback", "inform", "affirm"])
def test_thanks_or_remarks_that_close_with_a_farewell_become_goodbye(intent):
    [out] = FarewellDetector().process([message("ok grazie di tutto, ciao", intent)])
    assert out.get("intent") == {"name": "goodbye", "confidence": 1.0}
    ranking = [r["name"] for r in out.get("intent_ranking")]
    assert ranking == ["goodbye", intent]  # the classifier's ranking stays, behind


@pytest.mark.parametrize("text,intent", [
    ("quanto devo pagare? ciao", "pay_bill"),      # a request that ends with ciao
    ("voglio parlare con un operatore, ciao", "request_human"),
    ("/goodbye", "thank_you"),                      # a button payload
    ("grazie mille", "thank_you"),                   # no farewell
])
def test_requests_and_other_messages_keep_their_intent(text, intent):
    [out] = FarewellDetector().process([message(text, intent)])
    assert out.get("intent")["name"] == intent


@pytest.mark.parametrize("text", ["ciao!", "Ciao", "buongiorno", "hello!!", "hi",
                                  "ciao bcdfghjklmnp", "buongiorno a tutti", "good morning Anna"])
def test_a_greeting_the_classifier_could_not_place_is_the_greeting(text):
    [out] = FarewellDetector().process([message(text, "nlu_fallback", 0.5)])
    assert out.get("intent") == {"name": "greet", "confidence": 1.0}
    assert [r["name"] for r in out.get("intent_ranking")] == ["greet", "nlu_fallback"]


@pytest.mark.parametrize("text,intent", [("ciao", "goodbye"),
                                         ("ciao come va la bolletta", "nlu_fallback")])
def test_a_greeting_the_classifier_placed_or_a_longer_message_keeps_its_intent(text, intent):
    [out] = FarewellDetector().process([message(text, intent)])
    assert out.get("intent")["name"] == intent
