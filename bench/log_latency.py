"""How soon a customer's message is in the review console's conversation log.

The real stack (action server, Rasa server, desk, log worker) on each profile: embedded (SQLite)
and production (PostgreSQL tracker store, event stream and log in fresh databases; Redis lock
store); N customers talk over REST at the same time, and each message is timed from the moment
its REST reply arrives to the moment the log (built by the log worker from Rasa's event stream)
holds it. Run with
`python -m bench.log_latency [--profiles embedded,production] [--customers 1,10]`; results
in bench/results.json (key "log") and their own section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

from bench.common import (
    bench_env,
    drop_production,
    machine,
    percentiles,
    production_env,
    record,
    seed,
    settings_of,
    stack,
)
from bot.launcher import Ports, free_port

TITLE = "## Conversation log latency"
TURNS = ["ciao", "quanto devo pagare?", "come posso pagare?", "che tariffa ho?", "grazie"]


def _turns_in_log(sender: str) -> int:
    from sqlalchemy import select

    from bot.analytics.models import Conversation
    from bot.persistence.db import session_scope

    with session_scope() as db:
        return db.execute(select(Conversation.turns).where(Conversation.sender_id == sender)
                          .order_by(Conversation.session_start.desc())).scalars().first() or 0


def _customer(i: int, rasa: str, latencies: list[float]) -> None:
    sender = f"bench-log-{i}-{time.time_ns()}"
    with httpx.Client(timeout=120) as client:
        for n, text in enumerate(TURNS, start=1):
            client.post(f"{rasa}/webhooks/rest/webhook",
                        json={"sender": sender, "message": text}).raise_for_status()
            answered = time.monotonic()
            while _turns_in_log(sender) < n:
                time.sleep(0.02)
            latencies.append(time.monotonic() - answered)


def run(customers: tuple[int, ...], profile: str = "embedded") -> dict:
    work = Path(tempfile.mkdtemp(prefix="sportello-log-"))
    var = work / "var"
    var.mkdir()
    ports = Ports(rasa=17105, actions=17155, desk=17106, site=free_port())
    env = bench_env(var, ports)
    databases = production_env(env) if profile == "production" else []
    try:
        with settings_of(env):
            seed(env)
            with stack(env, ports, ("actions", "rasa", "desk", "worker"), work):
                runs = []
                for n in customers:
                    latencies: list[float] = []
                    threads = [threading.Thread(target=_customer,
                                                args=(i, ports.url("rasa"), latencies))
                               for i in range(n)]
                    load = os.getloadavg()[0]
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()
                    runs.append({"customers": n, **percentiles(latencies),
                                 "load": [round(load, 1), round(os.getloadavg()[0], 1)]})
                return {"profile": profile, "runs": runs}
    finally:
        if databases:
            drop_production(databases)


PROFILES = {"embedded": "embedded profile (SQLite)",
            "production": "production profile (PostgreSQL, Redis lock store)"}


def section(raw: dict) -> list[str]:
    r = raw.get("log")
    if not r:
        return []
    lines = [f"{TITLE} (run {r['date']})", "",
             f"Machine: {r['machine']}. Each message is timed from its REST reply to the moment "
             "the conversation log holds it (the log worker reads Rasa's event stream every "
             "second, "
             "so about 0.5 s is the expected middle).", "",
             "| profile | customers at once | messages | p50 | p95 | max "
             "| load average (start, end) |",
             "|---|---|---|---|---|---|---|"]
    for p in r.get("profiles") or [{"profile": "embedded", "runs": r["runs"]}]:
        for x in p["runs"]:
            lines.append(f"| {PROFILES[p['profile']]} | {x['customers']} | {x['messages']} | "
                         f"{x['p50_ms']} ms | {x['p95_ms']} ms | {x['max_ms']} ms | "
                         f"{x['load'][0]}, {x['load'][1]} |")
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.log_latency")
    parser.add_argument("--customers", default="1,10")
    parser.add_argument("--profiles", default="embedded,production")
    args = parser.parse_args(argv)
    profiles = [p for p in args.profiles.split(",") if p]
    unknown = [p for p in profiles if p not in PROFILES]
    if unknown:
        parser.error(f"unknown profile(s): {', '.join(unknown)}; use embedded, production")
    customers = tuple(int(n) for n in args.customers.split(","))
    result = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": machine(),
              "profiles": [run(customers, p) for p in profiles]}
    record("log", result, TITLE, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
