"""Benchmarks: NLU quality, conversation speed against Rasa's starter assistant, training time
and memory. `make bench` (or `python -m bench.run [nlu|speed|train]`) writes bench/RESULTS.md.

The load generator is a small asyncio + httpx client: N simulated customers, each holding whole
conversations over the REST channel, every turn timed end to end.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.common import (
    RAW,
    RESULTS,
    ROOT,
    bench_env,
    drop_production,
    load,
    machine,
    production_env,
    seed,
    settings_of,
    stack,
    summary,
    wait_until_quiet,
)
from bot.launcher import Launcher, Ports, Service, free_port

CONCURRENCY = (1, 10, 50)
# Conversations per simulated customer in one measurement, by the number of customers: a few
# hundred turns each (one customer's 15 turns gave a p50 that moved by a tenth between runs).
CONVERSATIONS = {1: 12, 10: 6, 50: 3}
# Sportello and the starter are measured in turn, ROUNDS times at each number of customers, and
# each figure pools their rounds: the machine's speed drifts by about a tenth between runs, and a
# drift now falls on both.
ROUNDS = 3

SPORTELLO_TURNS = ["ciao", "quanto devo pagare?", "che tariffa ho?",
                   "a che punto è la mia pratica?", "grazie"]
BASELINE_TURNS = ["hello", "I am sad", "yes", "bye"]


# How DIET's epochs were chosen, while DIET was the classifier: kept with the training figures.
EPOCHS_RECORD = Path(__file__).with_name("data") / "training-epochs.md"


def peak_rss_mib(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process and its children, MiB."""
    total = 0
    pids = [pid]
    try:
        pids += [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                text=True).stdout.split()]
    except OSError:
        pass
    for p in pids:
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmHWM"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def side_by_side(profile: str, work: Path, starter: Launcher) -> dict:
    """The whole stack of one profile (every process, the log worker consuming the event stream
    as in use) and the starter assistant (`starter`, already running), loaded in turn at each
    number of customers, ROUNDS times (the order swapped every round), the machine quiet before
    each measurement, every measurement on new conversations: each one's turns, latency (its
    rounds pooled), the turns/s ratio of each round, how long the machine took to be quiet after
    each measurement, the cores the other stack used during each one's measurements, and the
    stack's peak memory."""
    from bench.profile import SERVICES, machine_cpu
    from bot.launcher import ALL
    from bot.tokens import make_customer_token

    var = work / f"var-{profile}"
    var.mkdir()
    ports = Ports(rasa=free_port(), actions=free_port(), desk=free_port(), site=free_port())
    env = bench_env(var, ports)
    databases = production_env(env, redis_db="10") if profile == "production" else []
    result: dict = {"runs": [], "baseline": [], "round_ratios": [], "settled_seconds": [],
                    "other_stack_cores": []}
    try:
        with settings_of(env):
            seed(env)
            tokens = [make_customer_token(f"C{1000100 + i:07d}", 120) for i in range(50)]
            with stack(env, ports, ALL, work) as processes:
                url = f"{ports.url('rasa')}/webhooks/rest/webhook"
                # which processes are whose: Sportello's stack with the services only it uses
                groups = {f"sportello {name}": processes[name].proc.pid for name in ALL}
                groups.update({f"starter {name}": starter[name].proc.pid
                               for name in ("rasa", "actions")})
                sportello_groups = [*(g for g in groups if g.startswith("sportello")),
                                    *(name for name, _ in SERVICES if name != "py-spy")]

                def other_stack(name: str, before: dict, after: dict) -> float:
                    others = (sportello_groups if name == "starter"
                              else [g for g in groups if g.startswith("starter")])
                    return sum(after.get(g, 0.0) - before.get(g, 0.0) for g in others)

                for n in CONCURRENCY:
                    pooled: dict[str, list] = {"sportello": [], "starter": []}
                    seconds = {"sportello": 0.0, "starter": 0.0}
                    settled: dict[str, list[float]] = {"sportello": [], "starter": []}
                    other: dict[str, list[float]] = {"sportello": [], "starter": []}
                    ratios = []
                    wait_until_quiet()
                    for r in range(ROUNDS):
                        runs = {}
                        order = [("sportello", url, SPORTELLO_TURNS, tokens),
                                 ("starter", starter_url(), BASELINE_TURNS, [None])]
                        for name, to, turns, who in (order if r % 2 == 0 else order[::-1]):
                            before = machine_cpu(groups)
                            runs[name] = asyncio.run(load(to, turns, n, who, CONVERSATIONS[n],
                                                          pooled[name]))
                            other[name].append(round(other_stack(
                                name, before, machine_cpu(groups)) / runs[name]["seconds"], 3))
                            seconds[name] += runs[name]["seconds"]
                            # work left after the last reply (the log worker's backlog) is not
                            # in the turns/s: how long it took is written down
                            settled[name].append(wait_until_quiet())
                        ratios.append(round(runs["sportello"]["turns_per_second"]
                                            / runs["starter"]["turns_per_second"], 2))
                    result["runs"].append(summary(n, pooled["sportello"], seconds["sportello"]))
                    result["baseline"].append(summary(n, pooled["starter"], seconds["starter"]))
                    result["round_ratios"].append(ratios)
                    result["settled_seconds"].append(settled)
                    result["other_stack_cores"].append(other)
                result["memory_mib"] = {name: round(peak_rss_mib(processes[name].proc.pid))
                                        for name in ALL}
    finally:
        if databases:
            drop_production(databases)
    return result


STARTER_PORT = 16105


def starter_url() -> str:
    return f"http://127.0.0.1:{STARTER_PORT}/webhooks/rest/webhook"


def bench_speed() -> dict:
    """Rasa's starter assistant, generated and trained here, then each profile of Sportello
    side by side with it (`side_by_side`)."""
    work = Path(tempfile.mkdtemp(prefix="sportello-bench-"))
    (work / "var-starter").mkdir()
    env = bench_env(work / "var-starter", Ports.free())
    baseline = work / "baseline"
    baseline.mkdir()
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rasa", "init", "--no-prompt", "--init-dir",
                    str(baseline)], cwd=work, env=env, check=True, capture_output=True)
    results: dict = {"baseline_init_and_train_seconds": round(time.perf_counter() - t0)}
    starter = [Service("actions", [sys.executable, "-m", "rasa_sdk", "--actions", "actions",
                                   "--port", "16155"], "http://127.0.0.1:16155/health",
                       work / "b-actions.log", baseline),
               Service("rasa", [sys.executable, "-m", "rasa", "run", "--port",
                                str(STARTER_PORT)], f"http://127.0.0.1:{STARTER_PORT}/",
                       work / "b-rasa.log", baseline)]
    with Launcher(env, starter) as b:
        for profile in ("embedded", "production"):
            results[profile] = side_by_side(profile, work, b)
        results["baseline_memory_mib"] = {"rasa_server": round(peak_rss_mib(b["rasa"].proc.pid)),
                                          "action_server": round(
                                              peak_rss_mib(b["actions"].proc.pid))}
    shutil.rmtree(work, ignore_errors=True)
    return results


def bench_train() -> dict:
    """Full training time of Sportello's model, from scratch, in a temporary folder."""
    out = Path(tempfile.mkdtemp(prefix="sportello-train-"))
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-m", "rasa", "train", "--config", "config.yml",
         "--domain", "domain", "--data", "data", "--out", str(out), "--force"],
        cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"})
    seconds = time.perf_counter() - t0
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": round(seconds),
            "peak_rss_mib": round(int(peak.group(1)) / 1024) if peak else None,
            "ok": proc.returncode == 0}


def held_out() -> dict:
    from bot.nlu_eval import evaluate, load_agent
    from bot.runner import ensure_model

    agent = load_agent(ensure_model())
    result = {}
    for lang in ("it", "en"):
        s = evaluate(agent, lang)
        result[lang] = {"examples": s.examples, "accuracy": round(s.accuracy, 3),
                        "macro_f1": round(s.macro_f1, 3),
                        "accuracy_counting_fallbacks": round(s.accuracy_counting_fallbacks, 3),
                        "fallbacks": s.fallbacks,
                        "entities": f"{s.entity_hits}/{s.entity_checks}"}
    return result


def bench_heldout() -> dict:
    """Only the held-out part of the NLU benchmark (minutes instead of a quarter of an hour)."""
    return held_out()


def bench_nlu() -> dict:
    held = held_out()
    out = Path(tempfile.mkdtemp(prefix="sportello-cv-"))
    cv = {}
    for lang in ("it", "en"):
        data = out / f"nlu-{lang}"
        shutil.copytree(ROOT / "data" / "nlu" / lang, data)
        shutil.copy(ROOT / "data" / "nlu" / "regex.yml", data / "regex.yml")
        subprocess.run([sys.executable, "-m", "rasa", "test", "nlu", "--nlu", str(data),
                        "--config", "config.yml", "--cross-validation", "--folds", "5",
                        "--out", str(out / f"cv-{lang}")], cwd=ROOT, check=True,
                       capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"})
        report = json.loads((out / f"cv-{lang}" / "intent_report.json").read_text())
        cv[lang] = {"accuracy": round(report["accuracy"], 3),
                    "macro_f1": round(report["macro avg"]["f1-score"], 3)}
    shutil.rmtree(out, ignore_errors=True)
    return {"held_out": held, "cross_validation_5_fold": cv}


def speed_section(raw: dict) -> list[str]:
    s = raw["speed"]
    interleaved = "round_ratios" in s.get("production", {})
    method = (f"Each profile's stack and the starter run side by side and are loaded in turn, "
              f"{ROUNDS} rounds at each number of customers (Sportello first, then the "
              "starter first, and so on), every measurement on new conversations, the machine "
              "quiet (under a tenth of a core busy) before each one; a row pools its rounds "
              "(turns/s: all turns over all measured seconds). Conversations per simulated "
              "customer in a "
              f"measurement: {CONVERSATIONS}. The load generator is an aiohttp client "
              "(bench/common.py) on the same two cores." if interleaved else
              "Sportello's stacks, then the starter, each measured once; 3 conversations per "
              "simulated customer; an httpx load generator.")
    lines = [f"## Conversation speed (REST, end to end){_when(raw, 'speed')}", "",
             f"Machine: {raw['machine']}. `python -m bench.run speed`. Sportello turns: "
             f"{SPORTELLO_TURNS} (logged-in demo customers; every turn runs actions that read "
             "the customer history), on the whole stack of the profile (action server, Rasa "
             "server, desk, demo site, log worker; the stores persistent: SQLite files in the "
             "embedded profile, PostgreSQL, Redis lock store in production). Baseline: the "
             f"`rasa init` starter assistant, turns {BASELINE_TURNS}, trained by the benchmark "
             f"in the same run. {method} Ratio = Sportello / starter (turns/s: higher is "
             "better; latency: lower is better).", ""]
    if "embedded" not in s:  # an older run, before both profiles were measured
        s = {"embedded": {"runs": s["sportello"], "memory_mib": s["memory_mib"]}, **s}
    for profile in ("embedded", "production"):
        if profile not in s:
            continue
        p = s[profile]
        lines += [f"### {profile} profile", "",
                  "| customers | Sportello p50 / p95 / p99 ms | Sportello turns/s |"
                  " starter p50 / p95 / p99 ms | starter turns/s | p50 ratio | p95 ratio |"
                  " turns/s ratio | turns/s ratio of each round |"
                  " turns/s ratio, until quiet |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        rounds = p.get("round_ratios") or [[] for _ in p["runs"]]
        settled = p.get("settled_seconds") or [None for _ in p["runs"]]
        for a, b, each, quiet in zip(p["runs"], p.get("baseline", s.get("baseline")), rounds,
                                     settled):
            until_quiet = "" if quiet is None else f"{_until_quiet(a, b, quiet):.2f}"
            lines.append(
                f"| {a['customers']} | {a['p50_ms']} / {a['p95_ms']} / {a['p99_ms']} | "
                f"{a['turns_per_second']} | {b['p50_ms']} / {b['p95_ms']} / {b['p99_ms']} | "
                f"{b['turns_per_second']} | {a['p50_ms'] / max(b['p50_ms'], 1):.2f} | "
                f"{a['p95_ms'] / max(b['p95_ms'], 1):.2f} | "
                f"{a['turns_per_second'] / max(b['turns_per_second'], 0.01):.2f} | "
                f"{' / '.join(f'{r:.2f}' for r in each)} | {until_quiet} |")
        memory = p["memory_mib"]
        if "other_stack_cores" in p:
            most = {who: max(max(level[who]) for level in p["settled_seconds"])
                    for who in ("sportello", "starter")}
            busy = {who: max(max(level[who]) for level in p["other_stack_cores"])
                    for who in ("sportello", "starter")}
            lines += ["", "After a measurement's last reply the machine was quiet again within "
                      f"{most['sportello']} s for Sportello and {most['starter']} s for the "
                      "starter (checked every half second); the last column counts that time "
                      "in each one's seconds, so that work left after the replies (the log "
                      "worker's) is paid for. During the starter's measurements Sportello's "
                      "waiting stack (its processes, PostgreSQL, RabbitMQ, Redis) used at most "
                      f"{busy['starter']} of a core; during Sportello's the starter's at most "
                      f"{busy['sportello']}. Per measurement in results.json."]
        lines += ["", "Peak memory (VmHWM) of each process: " + ", ".join(
            f"{name} {mib} MiB" for name, mib in memory.items())
            + f"; the whole stack {sum(memory.values())} MiB.", ""]
    base = s["baseline_memory_mib"]
    lines += ["Starter's peak memory: " + ", ".join(f"{n} {m} MiB" for n, m in base.items())
              + ".", ""]
    return lines


def _until_quiet(sportello: dict, starter: dict, settled: dict) -> float:
    """The turns/s ratio with the seconds until the machine was quiet counted in each one's
    time."""
    mine = sportello["turns"] / (sportello["seconds"] + sum(settled["sportello"]))
    theirs = starter["turns"] / (starter["seconds"] + sum(settled["starter"]))
    return mine / theirs


def _when(raw: dict, name: str) -> str:
    when = raw.get("dates", {}).get(name)
    return f" (run {when})" if when else ""


def write_results(raw: dict) -> None:
    lines = ["# Benchmark results", "",
             f"Last run {raw['date']} on {raw['machine']}. Produced by `make bench` "
             "(bench/run.py); raw numbers in bench/results.json. Each section says when it "
             "was measured.", ""]
    if "nlu" in raw:
        n = raw["nlu"]
        lines += [f"## NLU{_when(raw, 'nlu')}", "",
                  "| language | held-out examples | accuracy | macro-F1 |"
                  " accuracy, fallback = error | fallbacks | entities found |"
                  " 5-fold CV accuracy | 5-fold CV macro-F1 |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for lang in ("it", "en"):
            h, c = n["held_out"][lang], n.get("cross_validation_5_fold", {}).get(lang, {})
            lines.append(f"| {lang} | {h['examples']} | {h['accuracy']} | {h['macro_f1']} | "
                         f"{h.get('accuracy_counting_fallbacks', '')} | {h.get('fallbacks', '')} | "
                         f"{h['entities']} | {c.get('accuracy', '')} | {c.get('macro_f1', '')} |")
        lines += ["", "Held-out sets: tests/nlu/ (never used for training); accuracy and macro-F1 "
                  "take the classifier's best intent (as the test suite does), the next column "
                  "counts every message sent to the NLU fallback as an error. Cross-validation "
                  "(`rasa test nlu --cross-validation`): each language's training data alone, "
                  "5 folds, with the whole pipeline, so fallbacks count as errors there too; each "
                  "fold trains on 80% of one language, and the vocabulary guard sends the unseen "
                  "words of the held-out fold to the fallback.", ""]
    if "speed" in raw:
        lines += speed_section(raw)
    if "train" in raw:
        t = raw["train"]
        lines += [f"## Training{_when(raw, 'train')}", "",
                  "Full training from scratch (`rasa train --force`): "
                  f"{t['seconds']} s, peak memory {t['peak_rss_mib']} MiB.", "",
                  "The intent classifier is a logistic regression on a pretrained sentence "
                  "vector and n-gram counts (bot/nlu/linear_classifier.py, since 2026-12-04: "
                  "see \"NLU on wild and out-of-scope messages\" and \"HINT3\"); it trains in "
                  "seconds. Before, DIET was, and this is how its epochs were chosen (before the "
                  "TEDPolicy was removed, which saves its 7 s):", "",
                  EPOCHS_RECORD.read_text().strip(), ""]
    if "frustration" in raw:
        f = raw["frustration"]
        lines += [f"## Frustration detector{_when(raw, 'frustration')}", "",
                  "bot/handover/frustration.py on labelled messages (Italian and English) in "
                  "tests/data/. `frustration` was written with the detector; `frustration_dev` "
                  "was written by a separate author who never saw the detector, then used to "
                  "extend the word lists, so it is development data (before that, the detector "
                  "scored precision 0.957 and recall 0.55 on it); `holdout` was written the "
                  "same way afterwards and never used for tuning: its row is the only honest "
                  "figure.", "",
                  "| set | messages | frustrated | precision | recall |", "|---|---|---|---|---|"]
        for name, r in f.items():
            lines.append(f"| {name} | {r['messages']} | {r['frustrated']} | {r['precision']} | "
                         f"{r['recall']} |")
        lines.append("")
    if "handover" in raw:
        h = raw["handover"]
        lines += [f"## Handover latency{_when(raw, 'handover')}", "",
                  "N customers on the socket.io channel ask for a person at the same moment; N "
                  "agents signed in to the desk (WebSocket open) claim one each, then every pair "
                  "exchanges 5 messages each way (bench/handover.py), all on one machine with "
                  "the embedded profile. Customer → agent: from the customer's socket.io emit to "
                  "the desk's WebSocket push. Agent → customer: from the agent's POST to the "
                  "customer's socket.io `bot_uttered`.", "",
                  "| simultaneous handovers | direction | messages | p50 ms | p95 ms | max ms |",
                  "|---|---|---|---|---|---|"]
        for run_ in h["runs"]:
            for key, label in (("customer_to_agent", "customer → agent screen"),
                               ("agent_to_customer", "agent → customer")):
                r = run_[key]
                lines.append(f"| {run_['handovers']} | {label} | {r['messages']} | "
                             f"{r['p50_ms']} | {r['p95_ms']} | {r['max_ms']} |")
        lines += ["", "With 20 at once the two cores are the limit: every customer message still "
                  "goes through Rasa's NLU and tracker store while the conversation is paused, "
                  "and 20 customers writing at the same instant queue behind each other.", ""]
    # these sections are written by their own modules (which never import this one)
    from bench import (
        console,
        conversations,
        hint3,
        log_latency,
        nlu_wild,
        profile,
        replicas,
        topics,
    )

    lines += console.section(raw) + log_latency.section(raw) + conversations.section(raw)
    lines += nlu_wild.section(raw) + hint3.section(raw) + replicas.section(raw)
    lines += topics.section(raw) + profile.section(raw)
    RESULTS.write_text("\n".join(lines))


def main(argv: list[str]) -> int:
    which = argv or ["nlu", "speed", "train", "frustration", "handover"]
    raw = json.loads(RAW.read_text()) if RAW.exists() else {}
    raw["date"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    raw["machine"] = machine()
    for name in which:
        print(f"benchmark: {name}", flush=True)
        raw.setdefault("dates", {})[name if name != "heldout" else "nlu"] = raw["date"]
        if name == "heldout":  # refreshes the held-out figures inside the NLU results
            raw.setdefault("nlu", {})["held_out"] = bench_heldout()
        else:
            from bench.handover import bench_frustration, bench_handover

            raw[name] = {"nlu": bench_nlu, "speed": bench_speed, "train": bench_train,
                         "handover": bench_handover, "frustration": bench_frustration}[name]()
        RAW.write_text(json.dumps(raw, indent=2))
    write_results(raw)
    print(RESULTS.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
