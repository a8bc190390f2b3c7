"""The production layout past one process (issue 14), started by the product's own command,
`python -m bot run --profile production --replicas N`, for N = 1 and 2 Rasa servers (and as
many action servers) behind HAProxy, on this machine's PostgreSQL, Redis and RabbitMQ:

- time from the command to ready (its banner, every backend up in HAProxy's checks), the model
  already trained;
- turns per second and p50/p95 through the balancer at 50 and 200 concurrent customers;
- with 2 replicas, `kill -9` of one Rasa server while customers talk: how long each
  conversation takes to get its first answered message after the kill (a customer sends a
  failed message again after half a second, as the web widget does), and how long until the
  command has the replica back in service.

`python -m bench.replicas` writes its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

from bench.common import (
    ROOT,
    bench_env,
    drop_production,
    load,
    machine,
    machine_load,
    production_env,
    record,
    seed,
    settings_of,
)
from bot import balancer
from bot.launcher import Ports

TITLE = "## Replicas behind the load balancer"
CUSTOMERS = (50, 200)
CONVERSATIONS_PER_CUSTOMER = 2
TURNS = ["ciao", "quanto devo pagare?", "che tariffa ho?", "a che punto è la mia pratica?",
         "grazie"]
# the kill: customers talking, the kill after KILL_AFTER seconds, watched for WATCH seconds
KILL_CUSTOMERS = 50
KILL_AFTER = 10.0
WATCH = 90.0
RETRY_AFTER = 0.5


class Command:
    """`python -m bot run --profile production --replicas N` in its own process group, its
    output collected line by line."""

    def __init__(self, env: dict[str, str], replicas: int, log: Path) -> None:
        self.lines: list[tuple[float, str]] = []
        self.log = log
        self.began = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--profile", "production", "--replicas",
             str(replicas)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with open(self.log, "w") as out:
            for line in self.proc.stdout:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                out.write(line)
                out.flush()

    def wait_for(self, pattern: str, timeout: float = 600) -> float:
        """Seconds from the start of the command to its first line matching `pattern`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, line in list(self.lines):
                if re.search(pattern, line):
                    return at - self.began
            if self.proc.poll() is not None:
                raise RuntimeError(f"the command stopped: see {self.log}")
            time.sleep(0.1)
        raise RuntimeError(f"no line matching {pattern!r} within {timeout:.0f} s: see "
                           f"{self.log}")

    def stop(self) -> None:
        """Ctrl-C, as a person would; what is left after 30 s is killed."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _rasa_pid(port: int) -> int:
    """The Rasa server listening on `port` (a child of the command)."""
    out = subprocess.run(["pgrep", "-f", f"bot.rasa_server run .*--port {port} "],
                         capture_output=True, text=True).stdout.split()
    if len(out) != 1:
        raise RuntimeError(f"expected one Rasa server on port {port}, found {out}")
    return int(out[0])


def _replica_ports(config: Path, backend: str = "rasa") -> dict[str, int]:
    """{"rasa1": port, ...} from the rendered HAProxy configuration."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(
        rf"^\s+server ({backend}\d+) [\d.]+:(\d+) check", config.read_text(), re.M)}


async def _chat(client: httpx.AsyncClient, url: str, sender: str, token: str, until: float,
                events: list[tuple[float, int]]) -> None:
    """One customer talking until `until`: each message after the previous reply, a failed one
    sent again after RETRY_AFTER; (time of each answer or failure, status) in `events`."""
    i = 0
    while time.monotonic() < until:
        body = {"sender": sender, "message": TURNS[i % len(TURNS)],
                "metadata": {"customer_token": token}}
        try:
            status = (await client.post(url, json=body)).status_code
        except httpx.HTTPError:
            status = 0
        events.append((time.monotonic(), status))
        if status == 200:
            i += 1
        else:
            await asyncio.sleep(RETRY_AFTER)


async def _kill_scenario(url: str, tokens: list[str], config: Path, stats: str) -> dict:
    victim = _replica_ports(config)["rasa1"]
    pid = _rasa_pid(victim)
    start = time.monotonic()
    until = start + KILL_AFTER + WATCH
    events: dict[str, list[tuple[float, int]]] = {f"kill-{i}": [] for i in range(KILL_CUSTOMERS)}
    back: list[float] = []

    async def kill_then_watch() -> float:
        await asyncio.sleep(KILL_AFTER)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        while time.monotonic() < until:  # back in HAProxy's checks
            state = await asyncio.to_thread(balancer.status, stats)
            if killed + 1 < time.monotonic() and state.get("rasa/rasa1", "").startswith("UP") \
                    and _rasa_pid(victim) != pid:
                back.append(time.monotonic() - killed)
                break
            await asyncio.sleep(0.5)
        return killed

    limits = httpx.Limits(max_connections=KILL_CUSTOMERS + 10)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        killed, *_ = await asyncio.gather(
            kill_then_watch(),
            *(_chat(client, url, sender, tokens[i % len(tokens)], until, events[sender])
              for i, sender in enumerate(events)))
    failed = {s: e for s, e in events.items() if any(status != 200 and at >= killed
                                                     for at, status in e)}
    recovery = []
    for sender, e in failed.items():
        first_failure = min(at for at, status in e if status != 200 and at >= killed)
        answered = [at for at, status in e if status == 200 and at > first_failure]
        recovery.append(round(answered[0] - killed, 1) if answered else None)
    answered_after = [at for e in events.values() for at, status in e
                      if status == 200 and at >= killed]
    return {"customers": KILL_CUSTOMERS, "failed_requests": sum(
                1 for e in events.values() for at, status in e if status != 200),
            "failed_statuses": sorted({status for e in events.values() for _, status in e
                                       if status != 200}),
            "conversations_hit": len(failed),
            "recovery_seconds": sorted(r for r in recovery if r is not None),
            "never_recovered": sum(1 for r in recovery if r is None),
            "others_first_answer_seconds": round(min(answered_after) - killed, 2)
            if answered_after else None,
            "replica_back_seconds": round(back[0], 1) if back else None}


def run_layout(replicas: int, work: Path, kill: bool) -> dict:
    var = work / f"var-{replicas}"
    var.mkdir()
    ports = Ports.free()
    env = bench_env(var, ports)
    databases = production_env(env, redis_db="11")
    env.pop("SPORTELLO_DEMO", None)
    result: dict = {"replicas": replicas}
    try:
        with settings_of(env):
            seed(env)
            from bot.tokens import make_customer_token

            tokens = [make_customer_token(f"C{1000100 + i:07d}", 120) for i in range(50)]
        command = Command(env, replicas, work / f"run-{replicas}.log")
        try:
            result["ready_seconds"] = round(command.wait_for(r"^Sportello is running"), 1)
            config = var / "haproxy.cfg"
            stats = balancer.stats_url(config)
            balancer.wait_all_up(stats)
            result["all_up_seconds"] = round(time.monotonic() - command.began, 1)
            result["started"] = [line for _, line in command.lines if "ready (" in line]
            url = f"{ports.url('rasa')}/webhooks/rest/webhook"
            result["runs"] = []
            for n in CUSTOMERS:
                load_before = machine_load()
                run = asyncio.run(load(url, TURNS, n, tokens, CONVERSATIONS_PER_CUSTOMER))
                run["load"] = [load_before, machine_load()]
                result["runs"].append(run)
                print(f"{replicas} replica(s), {n} customers: {run}", flush=True)
            result["served"] = {k: v for k, v in balancer.sessions(stats).items()
                                if k.startswith("rasa/")}
            if kill:
                result["kill"] = asyncio.run(_kill_scenario(url, tokens, config, stats))
                result["kill"]["restart_line"] = next(
                    (line.strip() for _, line in command.lines if "started again" in line), None)
                print(f"kill: {result['kill']}", flush=True)
        finally:
            command.stop()
    finally:
        drop_production(databases)
    return result


def section(raw: dict) -> list[str]:
    r = raw.get("replicas")
    if not r:
        return []
    lines = [f"{TITLE} (run {r['date']})", "",
             f"Machine: {r['machine']}. `python -m bench.replicas`: the command "
             "`python -m bot run --profile production --replicas N` (HAProxy in front of N Rasa "
             "servers, N action servers and N desks, the log worker; PostgreSQL, Redis and "
             "RabbitMQ on this machine), the model already trained. Each simulated customer, "
             f"signed in, holds {CONVERSATIONS_PER_CUSTOMER} conversations of {TURNS} through "
             "the balancer, each message after the previous reply. On two cores a second "
             "replica cannot double anything: both replicas, both action servers, the "
             "databases, the broker, the balancer and the load generator share the same two "
             "cores, so the second replica's gain is bounded by the CPU the first one left "
             "idle (while it waits on PostgreSQL, RabbitMQ or the action server).", "",
             "| Rasa replicas | customers | turns | turns/s | p50 / p95 / p99 ms "
             "| load average (start, end) |", "|---|---|---|---|---|---|"]
    for layout in r["layouts"]:
        for x in layout["runs"]:
            lines.append(f"| {layout['replicas']} | {x['customers']} | {x['turns']} | "
                         f"{x['turns_per_second']} | {x['p50_ms']} / {x['p95_ms']} / "
                         f"{x['p99_ms']} | {x['load'][0]}, {x['load'][1]} |")
    lines += ["", "From the command to ready (the banner printed, every process answering its "
              "health URL; then every backend up in HAProxy's checks): " + "; ".join(
                  f"{x['replicas']} replica(s) {x['ready_seconds']} s ({x['all_up_seconds']} s)"
                  for x in r["layouts"]) + ".", ""]
    kill = next((x["kill"] for x in r["layouts"] if "kill" in x), None)
    if kill:
        rec = kill["recovery_seconds"]
        how = ", ".join("the connection closed without an answer" if status == 0
                        else f"HTTP {status}" for status in kill["failed_statuses"]) or "-"
        spread = (f"{rec[0]} s at the soonest, {statistics.median(rec):.1f} s median, "
                  f"{rec[-1]} s at the latest" if rec else "-")
        lines += [f"`kill -9` of one of 2 Rasa servers while {kill['customers']} customers "
                  f"talk: the messages in flight on it failed ({kill['failed_requests']} "
                  f"request(s) of {kill['conversations_hit']} conversation(s): {how}); each "
                  f"customer sent it again after {RETRY_AFTER} s. The "
                  "other conversations got their next answer "
                  f"{kill['others_first_answer_seconds']} s after the kill. The conversations "
                  "hit got their first answer after the kill " + spread
                  + (f" ({kill['never_recovered']} never within the {WATCH:.0f} s watched)"
                     if kill["never_recovered"] else "")
                  + ": each waits for its lock ticket, held in Redis by the dead process, to "
                  "expire (Rasa's TICKET_LOCK_LIFETIME, 60 s by default: a lower value "
                  "shortens this wait, and must stay above the slowest turn, or two turns of "
                  "one conversation could run at once). The command started the replica again "
                  f"and HAProxy had it back in service {kill['replica_back_seconds']} s after "
                  "the kill (the command printed `Rasa server 1 stopped; started again`).", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replicas")
    parser.add_argument("--replicas", default="1,2")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.replicas.split(",")]
    work = Path(tempfile.mkdtemp(prefix="sportello-replicas-"))
    result = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": machine(),
              "layouts": [run_layout(n, work, kill=n == max(counts) and n > 1)
                          for n in counts]}
    record("replicas", result, TITLE, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
