"""Rasa's own checks: `rasa data validate` and the test stories in tests/stories/."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# Rasa's validator flags every response that no story or rule names, including the ones that
# custom actions send and the `utter_ask_*` of forms (RasaHQ/rasa#4200). Those warnings are
# accepted only for responses that are really used by an action or a form; the test below
# proves that, and every other warning fails.
UNUSED = re.compile(r"The utterance '(utter_\w+)' is not used in any story or rule\.")


def domain_responses() -> set[str]:
    names = set()
    for f in (ROOT / "domain").glob("*.yml"):
        names |= set((yaml.safe_load(f.read_text()) or {}).get("responses", {}) or {})
    return names


def responses_used_by_code() -> set[str]:
    text = "\n".join(p.read_text() for p in (ROOT / "actions").glob("*.py"))
    used = set(re.findall(r"\"(utter_\w+)\"", text))
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
        cwd=ROOT, capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
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
        for name, variations in ((yaml.safe_load(f.read_text()) or {}).get("responses") or {}).items():
            default = [v for v in variations if not v.get("condition")]
            english = [v for v in variations if {"type": "slot", "name": "language", "value": "en"}
                       in (v.get("condition") or [])]
            assert default and english, f"{f.name}: {name} lacks Italian or English"


def test_every_response_an_action_names_exists():
    missing = {r for r in responses_used_by_code() if r not in domain_responses()}
    assert missing == set()


def test_rasa_test_stories_pass(model_path, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "rasa", "test", "core", "--model", str(model_path), "--stories",
         "tests/stories", "--out", str(tmp_path), "--fail-on-prediction-errors"],
        cwd=ROOT, capture_output=True, text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
             "TF_CPP_MIN_LOG_LEVEL": "3", "HOME": str(tmp_path)})
    failed = tmp_path / "failed_test_stories.yml"
    detail = failed.read_text() if failed.exists() else out.stdout[-3000:] + out.stderr[-3000:]
    assert out.returncode == 0, detail
    assert "Correct:" in out.stdout + out.stderr or (tmp_path / "story_report.json").exists()
