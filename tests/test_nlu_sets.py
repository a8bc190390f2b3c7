"""The held-out sets of bench/nlu_wild.py (bench/data/): well-formed, big enough, and never
seen in training, so that the benchmark measures what a new customer would get."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.test_nlu import CONVERSATION, INTENTS

ROOT = Path(__file__).resolve().parent.parent
SETS = ROOT / "bench" / "data"
LANGUAGES = ("it", "en")
SKILL_MINIMUM = 8  # per skill intent and language (issue 11)
CONVERSATION_MINIMUM = 5
OOS_MINIMUM = 60


def normalised(text: str) -> str:
    """Case and spacing do not make a message new."""
    return " ".join(text.lower().split())


def examples(path: Path) -> list[tuple[str, str]]:
    from rasa.shared.nlu.training_data.loading import load_data

    return [(ex.get("text"), ex.get("intent")) for ex in load_data(str(path)).intent_examples]


@pytest.fixture(scope="module")
def training() -> set[str]:
    return {normalised(text) for text, _ in examples(ROOT / "data" / "nlu")}


@pytest.mark.parametrize("language", LANGUAGES)
def test_wild_set_covers_every_in_scope_intent(language):
    counts = Counter(intent for _, intent in examples(SETS / f"wild_{language}.yml"))
    trained = {intent for _, intent in examples(ROOT / "data" / "nlu" / language)}
    assert INTENTS - {"out_of_scope"} <= set(counts) <= trained - {"out_of_scope"}
    for intent, n in counts.items():
        minimum = CONVERSATION_MINIMUM if intent in CONVERSATION else SKILL_MINIMUM
        assert n >= minimum, (language, intent, n)


@pytest.mark.parametrize("language", LANGUAGES)
def test_out_of_scope_set_is_big_enough(language):
    found = examples(SETS / f"oos_{language}.yml")
    assert {intent for _, intent in found} == {"out_of_scope"}
    assert len(found) >= OOS_MINIMUM


@pytest.mark.parametrize("name", [f"{kind}_{lang}.yml" for kind in ("wild", "oos")
                                  for lang in LANGUAGES])
def test_held_out_set_is_well_formed_and_not_in_training(name, training):
    path = SETS / name
    text = path.read_text(encoding="utf-8")
    assert "[" not in text and "{" not in text  # no entity markup: intents only
    found = examples(path)
    assert found, name
    keys = [normalised(t) for t, _ in found]
    assert len(keys) == len(set(keys)), [k for k, n in Counter(keys).items() if n > 1]
    leaked = sorted(k for k in keys if k in training)
    assert not leaked, f"{name}: held-out examples in data/nlu: {leaked}"


def test_wild_and_out_of_scope_sets_do_not_overlap():
    for language in LANGUAGES:
        wild = {normalised(t) for t, _ in examples(SETS / f"wild_{language}.yml")}
        oos = {normalised(t) for t, _ in examples(SETS / f"oos_{language}.yml")}
        assert not wild & oos, (language, wild & oos)
