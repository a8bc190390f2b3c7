"""Rasa's own checks: `rasa data validate` and the test stories in tests/stories/."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# Rasa's validator flags every response that no story or rule names, including the ones that
# custom actions send and the `utter_ask_*` of forms (RasaHQ/rasa#4200). Those warnings are
# accepted only for responses that are really used by an action or a form; the test below
# proves that, and every other warning fails.
UNUSED = re.compile(r"The utterance '(utter_\w+)' is not used in any story or rule\.")
# Vocabulary responses (bot.i18n.VOCABULARY) are resolved by actions through these accessors of
# bot.i18n; a group counts as used only when actions/ calls its accessor.
VOCABULARY_ACCESSORS = {"channel": "channel", "topic": "topic", "supply": "supply",
                        "status": "status", "day": "relative_day", "due": "due_note",
                        "answer": "answer_note"}


def domain_responses() -> set[str]:
    names = set()
    for f in (ROOT / "domain").glob("*.yml"):
        names |= set((yaml.safe_load(f.read_text()) or {}).get("responses", {}) or {})
    return names


def actions_code() -> str:
    return "\n".join(p.read_text() for p in (ROOT / "actions").glob("*.py"))


def vocabulary_used_by_code() -> set[str]:
    """Vocabulary responses whose group's accessor is really called in actions/."""
    from bot import i18n

    called = set(re.findall(r"\bi18n\.(\w+)\(", actions_code()))
    return {i18n.response_name(group, key) for group, keys in i18n.VOCABULARY.items()
            if VOCABULARY_ACCESSORS[group] in called for key in keys}


def responses_used_by_code() -> set[str]:
    used = set(re.findall(r"\"(utter_\w+)\"", actions_code())) | vocabulary_used_by_code()
    forms = {}
    for f in (ROOT / "domain").glob("*.yml"):
        forms.update((yaml.safe_load(f.read_text()) or {}).get("forms", {}) or {})
    for form in forms.values():
        used |= {f"utter_ask_{slot}" for slot in form["required_slots"]}
    return used


def test_rasa_data_validate_has_no_other_warnings():
    out = subprocess.run(
        [sys.executable, "-m", "rasa", "data", "validate", "--domain", "domain", "--data", "data",
         "--config", "config.yml", "--fail-on-warnings"],
        cwd=ROOT, capture_output=True, text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
             "SQLALCHEMY_SILENCE_UBER_WARNING": "1"})
    log = out.stdout + out.stderr
    warnings = [line for line in log.splitlines() if "UserWarning" in line]
    unexplained = [w for w in warnings if not UNUSED.search(w)]
    assert unexplained == [], unexplained
    flagged = {UNUSED.search(w).group(1) for w in warnings}
    not_really_used = flagged - responses_used_by_code()
    assert not_really_used == set(), f"responses nobody uses: {not_really_used}"
    assert "Traceback" not in log


def test_every_response_has_italian_and_english():
    for f in (ROOT / "domain").glob("*.yml"):
        responses = (yaml.safe_load(f.read_text()) or {}).get("responses") or {}
        for name, variations in responses.items():
            default = [v for v in variations if not v.get("condition")]
            english = [v for v in variations if {"type": "slot", "name": "language", "value": "en"}
                       in (v.get("condition") or [])]
            assert default and english, f"{f.name}: {name} lacks Italian or English"


def test_every_response_an_action_names_exists():
    assert responses_used_by_code() - domain_responses() == set()


def test_the_vocabulary_is_the_domain_vocabulary():
    """bot.i18n.VOCABULARY and the utter_vocab_* responses of the domain are the same set, every
    group has its accessor, and each accessor really resolves its own group."""
    from bot import i18n

    in_domain = {r for r in domain_responses() if r.startswith("utter_vocab_")}
    assert in_domain == i18n.vocabulary_responses()
    assert set(VOCABULARY_ACCESSORS) == set(i18n.VOCABULARY)
    assert vocabulary_used_by_code() == i18n.vocabulary_responses()


def test_every_vocabulary_entry_resolves_in_both_languages():
    """Through the domain as Rasa sends it to the action server (Domain.as_dict)."""
    from rasa.shared.core.domain import Domain

    from bot import i18n

    domain = Domain.load(str(ROOT / "domain")).as_dict()
    for group, keys in i18n.VOCABULARY.items():
        for key in keys:
            variations = domain["responses"][i18n.response_name(group, key)]
            italian = next(v["text"] for v in variations if not v.get("condition"))
            english = next(v["text"] for v in variations if v.get("condition") ==
                           [{"type": "slot", "name": "language", "value": "en"}])
            assert italian != english or group == "supply" and key == "gas", (group, key)
            values = {"date": "1 marzo", "due_date": "1 marzo", "days": 3,
                      "answer_by": "1 marzo", "indemnity": "30,00 €", "eta": "2 marzo",
                      "deadline": "entro il 3 marzo"}
            it = i18n.word(domain, group, key, "it", **values)
            en = i18n.word(domain, group, key, "en", **values)
            assert it == italian.format(**values) and en == english.format(**values)
            assert "{" not in it + en and it and en
            assert i18n.word(domain, group, key, None, **values) == it  # Italian by default
    # The accessors actions use, in both languages.
    assert i18n.supply(domain, "electricity", "it") == "luce"
    assert i18n.supply(domain, "electricity", "en") == "electricity"
    assert i18n.status(domain, "in_progress", "it") == "in lavorazione"
    assert i18n.status(domain, "in_progress", "en") == "in progress"
    assert i18n.channel(domain, "whatsapp", "it") == "su WhatsApp"
    assert i18n.channel(domain, "phone", "en") == "by phone"
    assert i18n.topic(domain, "pay_bill", "en") == "paying a bill"
    assert i18n.topic(domain, "goodbye", "it") == "una richiesta"  # unknown topics
    now = datetime(2024, 3, 5, 10, tzinfo=timezone.utc)
    assert i18n.relative_day(domain, now, date(2024, 3, 5), "it") == "oggi"
    assert i18n.relative_day(domain, now, date(2024, 3, 6), "en") == "yesterday"
    assert i18n.relative_day(domain, now, date(2024, 3, 9), "it") == "il 5 marzo 2024"
    assert i18n.relative_day(domain, now, date(2024, 3, 9), "en") == "on 5 March 2024"
    assert i18n.due_note(domain, date(2024, 3, 9), False, date(2024, 3, 5), "it") == \
        "scadenza il 9 marzo 2024, giorni rimasti: 4"
    assert i18n.due_note(domain, date(2024, 3, 1), False, date(2024, 3, 5), "en") == \
        "overdue since 1 March 2024, days overdue: 4"
    assert i18n.due_note(domain, date(2024, 3, 1), True, date(2024, 3, 5), "en") == "already paid"
    with pytest.raises(KeyError):
        i18n.supply(domain, "water", "it")


def test_rasa_test_stories_pass(agent, tmp_path):
    """`rasa test core --stories tests/stories`, run in this process with the model the other
    tests already loaded (Rasa's own evaluation, `rasa.core.test.test`)."""
    from rasa.core.test import test as test_stories

    result = asyncio.run(test_stories(str(ROOT / "tests" / "stories"), agent,
                                      out_directory=str(tmp_path), disable_plotting=True,
                                      errors=True, warnings=False))
    failed = tmp_path / "failed_test_stories.yml"
    detail = failed.read_text() if failed.exists() else ""
    assert "steps:" not in detail, detail  # Rasa writes every story it got wrong there
    assert result["accuracy"] == 1.0, result["report"]
