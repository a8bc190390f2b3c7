"""GreetingTokenizer: Rasa's WhitespaceTokenizer, without the greeting a request opens with.

"Buongiorno, dobbiamo comunicare le letture dei contatori" and "hi, John here, quick one: what
do I owe?" are requests. A classifier that reads the whole message weighs the greeting word as
much as the request (`greet` came first for both, so the customer got "I did not understand").
When a message opens with a greeting and goes on for a few words (bot.nlu.farewells), the
greeting's tokens are dropped, in training and in use alike, so the featurizers and the
classifier read the request; a greeting alone, or with a name, keeps every token. The text
itself is not changed: the entity extractors and the actions see the message as written.
"""

from __future__ import annotations

from typing import List, Text

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.farewells import request_after_greeting


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False)
class GreetingTokenizer(WhitespaceTokenizer):
    def tokenize(self, message: Message, attribute: Text) -> List[Token]:
        tokens = super().tokenize(message, attribute)
        if attribute != TEXT:
            return tokens
        start = request_after_greeting(message.get(TEXT))
        kept = [token for token in tokens if token.start >= start]
        return kept or tokens
