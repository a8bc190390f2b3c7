"""Safety: recognising a smell of gas, which must get the emergency number first."""

from __future__ import annotations

import re

GAS_SMELL = re.compile(
    r"(odore|puzza|puzzo|sento|sentiamo|perdita|fuga|fughe|perde)\W+(\w+\W+){0,3}gas"
    r"|gas\W+(\w+\W+){0,3}(odore|puzza|perdita|fuga|che perde|perde)"
    r"|smell\w*\W+(\w+\W+){0,3}gas|gas\W+(\w+\W+){0,2}(smell|leak)\w*|leak\w*\W+(\w+\W+){0,2}gas"
    r"|uova marce|rotten eggs?",
    re.IGNORECASE,
)


def smells_of_gas(text: str | None) -> bool:
    return bool(text) and bool(GAS_SMELL.search(text))
