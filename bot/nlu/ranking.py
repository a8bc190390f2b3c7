"""How Sportello's rule components (farewell, other company) overrule the classifier: their
intent goes in front, and the classifier's ranking stays behind it for whoever wants it."""

from __future__ import annotations

from typing import Text

from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY
from rasa.shared.nlu.training_data.message import Message


def predict_in_front(message: Message, name: Text) -> None:
    """`name` as the message's intent (confidence 1), in front of the classifier's ranking."""
    predicted = {"name": name, "confidence": 1.0}
    message.data.setdefault(INTENT_RANKING_KEY, [])
    message.data[INTENT_RANKING_KEY].insert(0, predicted)
    message.data[INTENT] = predicted
