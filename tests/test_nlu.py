"""NLU: the trained model on the held-out sets (tests/nlu/, never used for training), and the
formatted entities with their normalisation."""

from __future__ import annotations

import pytest

from bot.nlu_eval import HELD_OUT, evaluate, load_examples

TARGET = 0.92
INTENTS = {
    "greet", "goodbye", "thank_you", "affirm", "deny", "bot_challenge", "help", "request_human",
    "out_of_scope", "inform", "change_language", "give_feedback", "check_bill", "explain_bill",
    "pay_bill", "submit_meter_reading", "report_outage", "ticket_status", "activate_ebill",
    "update_contact", "setup_direct_debit", "contract_info", "file_complaint",
    "request_callback", "move_home", "cancel",
}


def test_held_out_sets_are_complete_and_not_in_training():
    from pathlib import Path

    from rasa.shared.nlu.training_data.loading import load_data

    training = {ex.get("text").lower() for ex in load_data("data/nlu").intent_examples}
    for language, path in HELD_OUT.items():
        examples = load_examples(path)
        per_intent = {}
        for text, intent, _ in examples:
            per_intent[intent] = per_intent.get(intent, 0) + 1
            assert text.lower() not in training, f"held-out example in training data: {text}"
        assert set(per_intent) == INTENTS
        assert min(per_intent.values()) >= 15, per_intent
        for intent in INTENTS:
            train_count = sum(1 for f in Path(f"data/nlu/{language}").glob("*.yml")
                              for line in f.read_text().splitlines()
                              if line.strip() == f"- intent: {intent}")
            assert train_count == 1, (language, intent)


@pytest.mark.parametrize("language", ["it", "en"])
def test_intent_accuracy_on_held_out_set(agent, language, capsys):
    score = evaluate(agent, language)
    with capsys.disabled():
        print(f"\nNLU held-out [{language}]: {score.examples} examples, "
              f"accuracy {score.accuracy:.3f}, macro-F1 {score.macro_f1:.3f}, "
              f"entities {score.entity_hits}/{score.entity_checks}")
        for text, expected, predicted in score.errors[:15]:
            print(f"   {expected:>20} -> {predicted:<20} {text}")
    assert score.accuracy >= TARGET


@pytest.mark.parametrize("text,entity,value", [
    ("il mio codice cliente è C1234567", "customer_code", "C1234567"),
    ("la lettura è 4821,5", "meter_reading", "4821,5"),
    ("my reading is 12345", "meter_reading", "12345"),
    ("scrivetemi a mario.rossi@example.it grazie", "email", "mario.rossi@example.it"),
    ("il numero è +39 333 1234567", "phone", "+39 333 1234567"),
    ("call me on 3331234567", "phone", "3331234567"),
    ("IBAN IT60X0542811101000000123456", "iban", "IT60X0542811101000000123456"),
    ("a che punto è la pratica T-2026-000123?", "ticket_id", "T-2026-000123"),
    ("non ho la luce", "supply_type", "electricity"),
    ("the power is off", "supply_type", "electricity"),
    ("lettura del gas", "supply_type", "gas"),
    ("scrivimi in inglese", "language", "en"),
    ("can we speak italian", "language", "it"),
])
def test_formatted_entities_are_extracted_and_normalised(agent, text, entity, value):
    import asyncio

    parsed = asyncio.run(agent.parse_message(text))
    found = [(e["entity"], str(e["value"])) for e in parsed["entities"]]
    assert (entity, value) in found, found


def test_customer_code_is_not_a_meter_reading(agent):
    import asyncio

    parsed = asyncio.run(agent.parse_message("C1234567"))
    entities = {e["entity"] for e in parsed["entities"]}
    assert entities == {"customer_code"}


@pytest.mark.parametrize("text", ["zxqv blorp fnord", "qwerty asdf zxcv",
                                  "Wie hoch ist meine Rechnung im Oktober, bitte?"])
def test_unknown_words_go_to_the_fallback(agent, text):
    import asyncio

    assert asyncio.run(agent.parse_message(text))["intent"]["name"] == "nlu_fallback"


@pytest.mark.parametrize("text,intent", [("quanto devo pagre", "check_bill"),
                                         ("C1000001", "inform"), ("482913", "inform")])
def test_typos_codes_and_numbers_pass_the_vocabulary_guard(agent, text, intent):
    """The guard leaves them to the classifier, which ranks the right intent first (a bare
    code may still fall under the FallbackClassifier's threshold: the fallback action then
    starts verification, tests/test_given_data.py)."""
    import asyncio

    parsed = asyncio.run(agent.parse_message(text))
    ranked = [r["name"] for r in parsed["intent_ranking"] if r["name"] != "nlu_fallback"]
    assert ranked[0] == intent
    if parsed["intent"]["name"] == "nlu_fallback":  # not the guard's: the classifier's threshold
        assert parsed["intent_ranking"][0]["name"] != "nlu_fallback" or \
            parsed["intent"]["confidence"] <= 0.5


CONVERSATION = {"greet", "goodbye", "thank_you", "affirm", "deny", "bot_challenge", "help",
                "out_of_scope", "inform", "change_language", "give_feedback", "cancel"}


@pytest.mark.parametrize("language", ["it", "en"])
def test_training_data_per_language_and_skill(language):
    from pathlib import Path

    from rasa.shared.nlu.training_data.loading import load_data

    counts = {}
    for f in Path(f"data/nlu/{language}").glob("*.yml"):
        for ex in load_data(str(f)).intent_examples:
            counts[ex.get("intent")] = counts.get(ex.get("intent"), 0) + 1
    assert set(counts) == INTENTS
    for intent, n in counts.items():
        assert n >= (20 if intent in CONVERSATION else 40), (intent, n)


@pytest.mark.parametrize("text", [" ", "???", "...", "😀"])
def test_a_message_without_words_gets_an_intent_from_the_trained_model(agent, text):
    """No token to count (the regex and count featurizers give nothing): the classifier reads
    zeros for them instead of failing the whole turn."""
    import asyncio

    parsed = asyncio.run(agent.parse_message(text))
    assert parsed["intent"]["name"]
    assert parsed["intent_ranking"]
