"""The conversation suite as a benchmark: every conversation of tests/conversations/ played over
REST against a fresh embedded stack (Rasa server and action server on the demo data), reported
per language: the share of conversations whose task is done with the right facts (every check
passed), silent turns, duplicate side effects.

    .venv/bin/python -m bench.conversations [--no-write] [-k SUBSTRING]

Results go to bench/results.json (key "conversations") and to their own section of
bench/RESULTS.md (the other sections are left as they are). The same checks run in the test
suite (tests/conversations/test_conversations.py); this entry point gives the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench.common import RAW, ROOT, bench_env, machine, settings_of, stack, write_section
from bot.launcher import Ports, free_port

TITLE = "## Conversation suite"
RASA_PORT, ACTION_PORT = 18005, 18055
TARGETS = {"task_done_share": 0.95, "silent_turns": 0, "duplicate_tickets": 0}


def stack_env(var: Path, ports: Ports) -> Dict[str, str]:
    """The benchmarks' embedded environment (bench.common.bench_env), with the test stack's
    desk hours (open, nobody online: a handover is answered honestly, never left waiting) and
    room for the suite's one-time codes."""
    return bench_env(var, ports, DESK_HOURS="mon-sun 00:00-24:00", OTP_SENDS_PER_HOUR="50",
                     OTP_DELIVERY="outbox")


def rest_talk(client, url: str):
    """`talk(sender, text, token)` over the REST channel, as tests/stack.py's Stack.talk."""

    def talk(sender: str, text: str, token: Optional[str] = None) -> List[Dict[str, Any]]:
        body: Dict[str, Any] = {"sender": sender, "message": text}
        if token:
            body["metadata"] = {"customer_token": token}
        r = client.post(f"{url}/webhooks/rest/webhook", json=body)
        r.raise_for_status()
        return r.json()

    return talk


def run_suite(rasa_url: str, token_secret: str, only: str = "") -> list:
    """Every conversation (or those whose id contains `only`), one after the other, each with
    a fresh sender id; the database is the one the environment points at."""
    import httpx

    from bot.persistence.db import session_scope
    from bot.tokens import make_customer_token
    from tests.conversations.runner import (
        Responses,
        assign_customers,
        load_all,
        load_domain,
        run_conversation,
    )

    conversations = load_all()
    with session_scope() as session:
        assignment = assign_customers(conversations, session)
    responses = Responses(load_domain())
    results = []
    with httpx.Client(timeout=120) as client:
        talk = rest_talk(client, rasa_url)
        for conversation in conversations:
            if only and only not in conversation.id:
                continue
            customer = assignment[conversation.id]
            result = run_conversation(
                conversation, talk, session_scope,
                lambda code: make_customer_token(code, 60, secret=token_secret),
                customer=None if customer == "anonymous" else customer,
                sender=f"bench-{uuid.uuid4().hex[:12]}", responses=responses)
            print(f"{'ok  ' if result.passed else 'FAIL'} {conversation.id}", flush=True)
            results.append(result)
    return results


def bench_conversations(only: str = "") -> Dict[str, Any]:
    """A fresh embedded stack on the demo data, the suite played against it, the figures."""
    from bot.runner import ensure_model

    work = Path(tempfile.mkdtemp(prefix="sportello-conversations-"))
    var = work / "var"
    var.mkdir()
    ports = Ports(rasa=RASA_PORT, actions=ACTION_PORT, desk=free_port(), site=free_port())
    env = stack_env(var, ports)
    subprocess.run([sys.executable, "-m", "bot", "seed-demo"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    model = ensure_model()
    with settings_of(env), stack(env, ports, ("actions", "rasa"), work, model):
        started = time.perf_counter()
        results = run_suite(ports.url("rasa"), env["CUSTOMER_TOKEN_SECRET"], only)
        seconds = time.perf_counter() - started
    return figures(results, seconds, machine(), model.name, work)


def figures(results: list, seconds: float, machine: str, model: str,
            work: Optional[Path] = None) -> Dict[str, Any]:
    """The raw figures of a run (bench/results.json), with each failure's report."""
    from tests.conversations.runner import failure_counts, summarise

    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine, "model": model, "seconds": round(seconds),
        "conversations": len(results), "turns": sum(len(r.exchanges) for r in results),
        "by_language": summarise(results), "first_failures": failure_counts(results),
        "reports": {r.conversation.id: r.report() for r in results if not r.passed},
        "logs": str(work) if work else "",
    }


def section(raw: Dict[str, Any]) -> List[str]:
    """The Markdown section of RESULTS.md (a note when the suite has not been measured)."""
    r = raw.get("conversations")
    intro = ("Every conversation of tests/conversations/ (written from the customer's side: "
             "colloquial, typos, no accents, capitals, data inside messages, interruptions, "
             "corrections, cancelling, status questions, near-domain questions that are not "
             "ours), played over REST against a fresh embedded stack on the demo data "
             "(`python -m bench.conversations`). A conversation's task is done when every check "
             "passes: the facts in the replies (amounts, due dates, ticket ids, readings, masked "
             "contacts, read from the database when checked), the side effects afterwards, a "
             "reply to every turn. Duplicate side effects: tickets that repeat one opened in the "
             "same conversation or one already open (unless the conversation asks for it).")
    if not r:
        return [f"{TITLE} (not measured yet)", "", intro, "",
                "Not measured yet: the suite was written while no stack could be started. "
                "`python -m bench.conversations` replaces this section with the machine and the "
                "figures per language.", ""]
    lines = [f"{TITLE} (run {r['date']})", "", f"Machine: {r['machine']}. Model {r['model']}. "
             f"{r['conversations']} conversations, {r['turns']} turns, {r['seconds']} s.", "",
             intro, "",
             "| language | conversations | task done with the right facts | silent turns | "
             "duplicate side effects |", "|---|---|---|---|---|"]
    for lang in ("it", "en"):
        s = r["by_language"].get(lang)
        if s:
            lines.append(f"| {lang} | {s['conversations']} | {s['task_done_share']:.1%} "
                         f"({s['passed']}) | {s['silent_turns']} | {s['duplicate_tickets']} |")
    lines += ["", f"Targets: task done ≥ {TARGETS['task_done_share']:.0%}, silent turns "
              f"{TARGETS['silent_turns']}, duplicate side effects {TARGETS['duplicate_tickets']}."]
    if r["first_failures"]:
        counts = ", ".join(f"{k} {v}" for k, v in r["first_failures"].items())
        failed = sorted(i for s in r["by_language"].values() for i in s["failed"])
        lines += ["", f"First failed check of each failed conversation: {counts}. Failed: "
                  + ", ".join(f"`{i}`" for i in failed) + " (transcripts in bench/results.json)."]
    return lines + [""]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.conversations")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("-k", dest="only", default="", help="only ids containing this")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    result = bench_conversations(args.only)
    raw = json.loads(RAW.read_text()) if RAW.exists() else {}
    raw["conversations"] = result
    print("\n".join(section(raw)))
    if not args.no_write and not args.only:
        raw.setdefault("dates", {})["conversations"] = result["date"]
        RAW.write_text(json.dumps(raw, indent=2))
        write_section(TITLE, section(raw))
    return 0 if all(s["task_done_share"] >= TARGETS["task_done_share"]
                    for s in result["by_language"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
