"""bench/profile.py's grouping of py-spy samples: a sample counts for the first component any
of its frames belongs to, and the top frame for the function list."""

from __future__ import annotations

from bench.profile import ACTIONS, RASA, summarise

SP = "/work/main/.venv/lib/python3.10/site-packages"
RAW = "\n".join([
    # the tracker store's SQL is the tracker store's
    f"handle (sanic/app.py:1);save ({SP}/rasa/core/tracker_store.py:9);"
    f"execute ({SP}/sqlalchemy/engine/base.py:3) 30",
    # a schema check inside an action call counts for the schema, listed first
    f"run ({SP}/rasa/core/actions/action.py:5);validate ({SP}/jsonschema/validators.py:7) 50",
    f"serve ({SP}/sanic/server.py:2) 15",
    "mystery (/somewhere/else.py:1) 5",
    # waiting, not working: left out of the shares
    "run (/usr/lib/python3.10/threading.py:9);"
    "_worker (/usr/lib/python3.10/concurrent/futures/thread.py:81) 400",
    "",
])


def test_samples_are_grouped_by_component_and_top_frame():
    s = summarise(RAW, RASA)
    assert s["samples"] == 100 and s["idle_samples"] == 400
    assert s["components"] == {"jsonschema validation": 0.5, "tracker store": 0.3,
                               "HTTP server (Sanic)": 0.15, "other": 0.05}
    assert s["top_functions"][0] == ("validate (jsonschema/validators.py:7)", 0.5)
    assert s["top_functions"][1] == ("execute (sqlalchemy/engine/base.py:3)", 0.3)


def test_no_samples_give_empty_shares():
    assert summarise("", RASA) == {"samples": 0, "idle_samples": 0, "components": {},
                                   "top_functions": []}


def test_project_paths_match_whole_folder_names():
    """py-spy prints the project's files relative to the working directory."""
    raw = ("run (rasa_sdk/executor.py:1);load_identity_card (bot/crm/card.py:9);"
           f"execute ({SP}/sqlalchemy/engine/base.py:3) 3\n"
           "run (rasa_sdk/executor.py:1);run (actions/bills.py:40) 1\n")
    assert summarise(raw, ACTIONS)["components"] == {"customer history (bot/crm)": 0.75,
                                                     "actions' own code": 0.25}


def test_the_whole_results_file_keeps_the_profile(monkeypatch, tmp_path):
    """`python -m bench.run` rewrites RESULTS.md from results.json: the profile's section, written
    by bench.profile, must survive it."""
    import json

    import bench.run
    from bench.common import RAW as KEPT

    raw = json.loads(KEPT.read_text())
    assert raw["profile"]["runs"]
    monkeypatch.setattr(bench.run, "RESULTS", tmp_path / "RESULTS.md")
    bench.run.write_results(raw)
    text = (tmp_path / "RESULTS.md").read_text()
    assert f"## Where a turn's time goes (run {raw['profile']['when']})" in text
    for run in raw["profile"]["runs"]:
        assert f"### {run['profile']} profile: {run['customers']} customers" in text
