"""The entity regexes of data/nlu/regex.yml, as the RegexEntityExtractor applies them (case
insensitive, on word boundaries)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=None)
def patterns(entity: str) -> list:
    data = yaml.safe_load((ROOT / "data" / "nlu" / "regex.yml").read_text())
    [item] = [i for i in data["nlu"] if i.get("regex") == entity]
    return [re.compile(line[2:].strip(), re.IGNORECASE)
            for line in item["examples"].splitlines() if line.strip()]


def found(entity: str, text: str) -> list:
    return [m.group(0) for p in patterns(entity) for m in p.finditer(text)]


@pytest.mark.parametrize("text,rating", [
    ("3, va bene ma io preferisco sempre il telefono", "3"), ("5 stelle!", "5"),
    ("direi 4.", "4"), ("2 - poteva andare meglio", "2"), ("voto: 1", "1"),
])
def test_a_rating_is_found_with_a_comment_after_it(text, rating):
    assert found("rating", text) == [rating]


@pytest.mark.parametrize("text", ["3,5", "consumo 3 kwh", "ho pagato 2 euro", "4.5", "12", "B2"])
def test_a_number_that_is_not_a_rating(text):
    assert found("rating", text) == []
