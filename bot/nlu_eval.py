"""Evaluation of the NLU model on the held-out sets in tests/nlu/ (used by tests and bench)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.settings import ROOT

if TYPE_CHECKING:  # rasa is imported only where it is used
    from rasa.core.agent import Agent

HELD_OUT = {"it": ROOT / "tests" / "nlu" / "it.yml", "en": ROOT / "tests" / "nlu" / "en.yml"}


@dataclass
class NluScore:
    language: str
    examples: int
    accuracy: float
    macro_f1: float
    errors: list[tuple[str, str, str]]  # (text, expected, predicted)
    entity_checks: int
    entity_hits: int
    fallbacks: int = 0  # messages the pipeline sent to the NLU fallback

    @property
    def accuracy_counting_fallbacks(self) -> float:
        """Accuracy when a fallback counts as an error (what `rasa test nlu` reports)."""
        return (self.examples - len(self.errors) - self.fallbacks_on_correct) / self.examples

    fallbacks_on_correct: int = 0


def load_examples(path: Path) -> list[tuple[str, str, list[dict]]]:
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(path))
    return [(ex.get("text"), ex.get("intent"), ex.get("entities") or [])
            for ex in data.intent_examples]


def load_agent(model_path: Path) -> Agent:
    import logging

    from rasa.core.agent import Agent
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)

    return Agent.load(str(model_path))


async def _parse_all(agent: Agent, texts: list[str]) -> list[dict]:
    return [await agent.parse_message(text) for text in texts]


def evaluate(agent: Agent, language: str, path: Path | None = None) -> NluScore:
    from sklearn.metrics import f1_score

    examples = load_examples(path or HELD_OUT[language])
    parsed = asyncio.run(_parse_all(agent, [text for text, _, _ in examples]))
    expected = [intent for _, intent, _ in examples]
    predicted = []
    fallbacks = 0
    for p in parsed:
        name = p["intent"]["name"]
        if name == "nlu_fallback":
            fallbacks += 1  # the fallback hides the classifier's best guess
            ranking = p.get("intent_ranking") or []
            name = next((r["name"] for r in ranking if r["name"] != "nlu_fallback"), name)
        predicted.append(name)
    errors = [(t, e, pr) for (t, e, _), pr in zip(examples, predicted) if e != pr]
    checks = hits = 0
    for (_, _, entities), p in zip(examples, parsed):
        found = {(e["entity"], str(e["value"]).lower()) for e in p.get("entities", [])}
        for ent in entities:
            checks += 1
            hits += (ent["entity"], str(ent["value"]).lower()) in found
    return NluScore(
        language=language, examples=len(examples),
        accuracy=sum(e == p for e, p in zip(expected, predicted)) / len(examples),
        macro_f1=f1_score(expected, predicted, average="macro", zero_division=0),
        errors=errors, entity_checks=checks, entity_hits=hits, fallbacks=fallbacks,
        fallbacks_on_correct=sum(1 for p, e, pr in zip(parsed, expected, predicted)
                                 if p["intent"]["name"] == "nlu_fallback" and e == pr),
    )
