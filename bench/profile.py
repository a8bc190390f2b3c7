"""Where a Sportello turn's time goes: py-spy samples the Rasa server and the action server while
simulated customers hold REST conversations, and the samples are grouped by component.

Each sample is a stack of the process's busy thread (py-spy leaves idle threads out); it counts
for the first component, in the order of `RASA` / `ACTIONS`, that any of its frames belongs to,
so a component's share includes what it calls (the tracker store's SQL is the tracker store's).
The functions with the most samples of their own (the top frame) are listed too.

    python -m bench.profile [--profile embedded|production] [--customers 10] [--seconds 20]
                            [--no-write] [--keep DIR]

Writes a section of bench/RESULTS.md and the raw figures to bench/results.json (unless
--no-write). Needs py-spy (requirements.txt) and the right to trace the processes it starts
(root, or ptrace allowed for the user, as on this machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from bench.common import (
    RAW,
    ROOT,
    bench_env,
    client,
    drop_production,
    machine,
    machine_load,
    post_turn,
    production_env,
    seed,
    settings_of,
    stack,
    write_section,
)
from bot.launcher import ALL, Ports, free_port

PY_SPY = Path(sys.executable).with_name("py-spy")
TURNS = ["ciao", "quanto devo pagare?", "che tariffa ho?", "a che punto è la mia pratica?",
         "grazie"]
# (component, path fragments of a frame's file). Checked in this order on the whole stack.
RASA = [
    ("jsonschema validation", ("jsonschema/",)),
    ("event broker", ("rasa/core/brokers/", "bot/event_outbox.py")),
    # the tracker store's reads and saves run in worker threads, from these functions of
    # bot/rasa_patches.py (a fragment ending in " (" names a function)
    ("tracker store", ("rasa/core/tracker_store.py", "_read_in_a_thread (",
                       "_save_in_a_thread (")),
    ("lock store", ("rasa/core/lock_store.py",)),
    ("action server calls", ("rasa/core/actions/action.py", "aiohttp/")),
    # before NLU: TED's TensorFlow frames are the policies' time
    ("dialogue policies", ("rasa/core/policies/",)),
    ("NLU (tokenizer, featurizers, DIET)", ("rasa/nlu/", "tensorflow/", "keras/")),
    ("Sportello's Rasa components", ("bot/nlu/", "connectors/", "bot/rasa_patches.py")),
    ("graph runner and processor", ("rasa/engine/", "rasa/core/processor.py",
                                    "rasa/shared/core/")),
    ("HTTP server (Sanic)", ("sanic/", "sanic_routing/")),
]
ACTIONS = [
    ("Rasa NLU calls (actions/rasa_nlu.py)", ("actions/rasa_nlu.py",)),
    ("customer history (bot/crm)", ("bot/crm/",)),
    ("database (SQLAlchemy)", ("sqlalchemy/",)),
    ("actions' own code", ("actions/",)),
    ("rasa_sdk", ("rasa_sdk/",)),
    ("HTTP server (Sanic)", ("sanic/", "sanic_routing/")),
]


# A sample whose top frame is one of these is a thread waiting, not working: a worker thread
# waiting for a job, the event loop (uvloop, in C) waiting for the network. py-spy cannot always
# tell them apart from busy threads, so they are counted apart.
IDLE = ("_worker (concurrent/futures/thread.py", "serve (sanic/server/runners.py",
        "wait (threading.py", "select (selectors.py")


def frames(stack_line: str) -> list[str]:
    """`func (file:line);func (file:line);... count` → the frames, root first."""
    return stack_line.rsplit(" ", 1)[0].split(";")


def _file(frame: str) -> str:
    """`func (/path/to/file.py:12)` → `/path/to/file.py` (py-spy runs with --full-filenames; a
    leading slash makes "folder/" match only whole folder names in a relative path too)."""
    path = frame.rpartition(" (")[2].rsplit(":", 1)[0]
    return path if path.startswith("/") else "/" + path


def component(stack: list[str], groups: list[tuple[str, tuple[str, ...]]]) -> str:
    files = [_file(frame) for frame in stack]
    for name, fragments in groups:
        if any("/" + fragment in f for f in files for fragment in fragments
               if not fragment.endswith(" (")):
            return name
        if any(frame.startswith(fragment) for frame in stack for fragment in fragments
               if fragment.endswith(" (")):
            return name
    return "other"


def summarise(raw: str, groups: list[tuple[str, tuple[str, ...]]]) -> dict:
    """py-spy's raw (collapsed) output → busy samples, their share per component and top
    functions, and the samples of waiting threads."""
    by_component: Counter = Counter()
    own: Counter = Counter()
    total = idle = 0
    for line in raw.splitlines():
        if not line.strip():
            continue
        count = int(line.rsplit(" ", 1)[1])
        stack = frames(line)
        top = _short(stack[-1])
        if top.startswith(IDLE):
            idle += count
            continue
        total += count
        by_component[component(stack, groups)] += count
        own[top] += count
    share = {name: round(n / total, 3) for name, n in by_component.most_common()} if total else {}
    top = [(name, round(n / total, 3)) for name, n in own.most_common(12)] if total else []
    return {"samples": total, "idle_samples": idle, "components": share, "top_functions": top}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The machine's other processes a turn makes busy, by a fragment of their command line.
SERVICES = (("PostgreSQL", "postgres"), ("RabbitMQ", "beam.smp"), ("Redis", "redis-server"),
            ("py-spy", "py-spy"))


def machine_cpu(named: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by every process on the machine, grouped: the named processes
    with their children (by pid), the services a turn uses, this process (the load generator)
    and the rest."""
    parent: dict[int, int] = {}
    used: dict[int, float] = {}
    command: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command[pid] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")
        except (OSError, IndexError):  # gone meanwhile
            continue
        parent[pid] = int(fields[1])
        used[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    owner = {pid: name for name, pid in named.items()}
    owner[os.getpid()] = "load generator"
    groups: Counter = Counter()
    for pid, seconds in used.items():
        ancestor = pid
        name = "py-spy" if "py-spy" in command[pid] else None
        while name is None and ancestor > 1:
            name = owner.get(ancestor)
            ancestor = parent.get(ancestor, 0)
        if name is None:
            name = next((n for n, fragment in SERVICES if fragment in command[pid]), "other")
        groups[name] += seconds
    return dict(groups)


def _short(frame: str) -> str:
    """`func (/long/path/site-packages/pkg/mod.py:12)` → `func (pkg/mod.py:12)`."""
    name, _, where = frame.partition(" (")
    for marker in ("site-packages/", f"{ROOT}/", "/lib/python3.10/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where}"


async def _customers(url: str, tokens: list[str], n: int, until: float) -> int:
    turns = 0
    async with client(n, timeout=120) as session:
        async def one(i: int) -> None:
            nonlocal turns
            k = 0
            while time.monotonic() < until:
                sender = f"profile-{i}-{k}"
                for text in TURNS:
                    await post_turn(session, url, {
                        "sender": sender, "message": text,
                        "metadata": {"customer_token": tokens[i % len(tokens)]}})
                    turns += 1
                k += 1
        await asyncio.gather(*(one(i) for i in range(n)))
    return turns


def run(profile: str, customers: int, seconds: int, keep: Path | None = None) -> dict:
    from bot.tokens import make_customer_token

    if not PY_SPY.exists():
        raise SystemExit(f"py-spy not found at {PY_SPY}: make setup installs it")
    work = Path(tempfile.mkdtemp(prefix="sportello-profile-"))
    var = work / "var"
    var.mkdir()
    ports = Ports(rasa=free_port(), actions=free_port(), desk=free_port(), site=free_port())
    env = bench_env(var, ports)
    databases = production_env(env, redis_db="9") if profile == "production" else []
    try:
        with settings_of(env):
            seed(env)
            tokens = [make_customer_token(f"C{1000100 + i:07d}", 120) for i in range(50)]
            # the whole stack, as the speed benchmark runs it (the log worker consumes the events)
            with stack(env, ports, ALL, work) as processes:
                url = f"{ports.url('rasa')}/webhooks/rest/webhook"
                asyncio.run(_customers(url, tokens, 2, time.monotonic() + 5))  # warm-up
                outputs = {name: work / f"{name}.spy" for name in ("rasa", "actions")}
                spies = [subprocess.Popen(
                    [str(PY_SPY), "record", "--pid", str(processes[name].proc.pid),
                     "--subprocesses", "--rate", "100", "--duration", str(seconds),
                     "--format", "raw", "--output", str(out), "--nonblocking",
                     "--full-filenames"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                    for name, out in outputs.items()]
                load_before = machine_load()
                pids = {name: processes[name].proc.pid for name in outputs}
                cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                every = {name: processes[name].proc.pid for name in ALL}
                machine_before = machine_cpu(every)
                turns = asyncio.run(_customers(url, tokens, customers,
                                               time.monotonic() + seconds))
                cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
                machine_after = machine_cpu(every)
                for spy in spies:
                    _, err = spy.communicate(timeout=seconds + 60)
                    if spy.returncode != 0:
                        raise SystemExit(f"py-spy failed: {err.decode()[-500:]}")
                result = {
                    "profile": profile, "customers": customers, "seconds": seconds,
                    "turns": turns, "turns_per_second": round(turns / seconds, 1),
                    "load": [load_before, machine_load()],
                    "rasa": summarise(outputs["rasa"].read_text(), RASA),
                    "actions": summarise(outputs["actions"].read_text(), ACTIONS),
                    # CPU per turn (py-spy's own work is in its processes, not in these)
                    "cpu_ms_per_turn": {name: round(used * 1000 / max(turns, 1), 1)
                                        for name, used in cpu.items()},
                    # the whole machine's CPU per turn, by process group
                    "machine_cpu_ms_per_turn": {
                        name: round((used - machine_before.get(name, 0.0)) * 1000
                                    / max(turns, 1), 1)
                        for name, used in sorted(machine_after.items(),
                                                 key=lambda item: -item[1])},
                }
                if keep is not None:  # the raw stacks, for a closer look (py-spy's format)
                    keep.mkdir(parents=True, exist_ok=True)
                    for name, out in outputs.items():
                        shutil.copy(out, keep / f"{profile}-{name}.spy")
    finally:
        if databases:
            drop_production(databases)
        shutil.rmtree(work, ignore_errors=True)
    return result


TITLE = "## Where a turn's time goes"


def write(results: list[dict]) -> None:
    """Keep the results in results.json and rewrite their section of RESULTS.md."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    raw = json.loads(RAW.read_text()) if RAW.exists() else {}
    raw["profile"] = {"when": when, "machine": machine(), "runs": results}
    RAW.write_text(json.dumps(raw, indent=2, ensure_ascii=False) + "\n")
    write_section(TITLE, section(raw))


def section(raw: dict) -> list[str]:
    """The RESULTS.md section of the last profile kept in results.json (also written by
    `python -m bench.run`, which rewrites the whole file)."""
    p = raw.get("profile")
    if not p:
        return []
    lines = [f"{TITLE} (run {p['when']})", "",
             f"Machine: {p['machine']}. `python -m bench.profile`: py-spy samples (100 a second, "
             "busy threads only) of the Rasa server and the action server while simulated "
             "customers, each with a customer token, hold REST conversations "
             f"({', '.join(repr(t) for t in TURNS)}). A sample counts for the first component "
             "any of its frames belongs to (bench/profile.py lists them in order), so a share "
             "includes what the component calls. A thread waiting inside a call (for the "
             "database, for SQLite's one writer) is not told apart from a working one: the "
             "tracker store's share, whose reads and saves run in worker threads, includes "
             "their waits. The CPU times per turn come from /proc.", ""]
    for r in p["runs"]:
        lines += [f"### {r['profile']} profile: {r['customers']} customers, {r['seconds']} s, "
                  f"{r['turns']} turns ({r['turns_per_second']} turns/s while sampled), "
                  f"load {r['load'][0]} → {r['load'][1]}", "",
                  "CPU time per turn (from /proc, all threads): Rasa server "
                  f"{r['cpu_ms_per_turn']['rasa']} ms, action server "
                  f"{r['cpu_ms_per_turn']['actions']} ms. The whole machine's CPU time per "
                  "turn, by process: " + ", ".join(
                      f"{name} {ms} ms" for name, ms in sorted(
                          r["machine_cpu_ms_per_turn"].items(), key=lambda item: -item[1])
                      if ms >= 0.1) + ".", ""]
        for process in ("rasa", "actions"):
            s = r[process]
            lines += [f"{'Rasa server' if process == 'rasa' else 'Action server'} "
                      f"({s['samples']} busy samples, {s['idle_samples']} of threads waiting "
                      "left out):", "", "| component | share |", "|---|---|"]
            lines += [f"| {name} | {share:.1%} |" for name, share in s["components"].items()]
            lines += ["", "Top functions by own samples: " + "; ".join(
                f"`{name}` {share:.1%}" for name, share in s["top_functions"][:6]) + ".", ""]
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", action="append", choices=["embedded", "production"],
                        help="the stack's profile (repeat for both; default: embedded)")
    parser.add_argument("--customers", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep py-spy's raw stacks in DIR (PROFILE-rasa.spy, ...)")
    args = parser.parse_args(argv)
    results = [run(p, args.customers, args.seconds, args.keep)
               for p in args.profile or ["embedded"]]
    print(json.dumps(results, indent=2, ensure_ascii=False))
    if not args.no_write:
        write(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
