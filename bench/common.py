"""What the benchmark modules share, so that none imports another: where results go, the
machine's description, the benchmarks' environment and stacks (started by bot.launcher),
PostgreSQL databases of their own, percentiles, and NLU-only trainings (quiet, with pipeline
overrides) and parsing."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import aiohttp
import yaml

from bot.launcher import Launcher, Ports, environment, services

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
RAW = ROOT / "bench" / "results.json"
# The PostgreSQL server of the benchmarks' own databases (BENCH_PG_ADMIN_URL, its maintenance
# database's URL, is still understood).
PG_SERVER = os.environ.get("BENCH_PG_SERVER") or os.environ.get(
    "BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres").rsplit("/", 1)[0]


def machine() -> str:
    mem = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) // 1024 // 1024} GiB"
    except OSError:
        pass
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{os.cpu_count()} cores ({cpu}), {mem}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def machine_load() -> float:
    return round(os.getloadavg()[0], 1)


def write_section(title: str, lines: list[str]) -> None:
    """Replace (or append) one benchmark's section of RESULTS.md, leaving the others."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    new = "\n".join(lines)
    start = text.find(title)
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + new
    else:
        end = text.find("\n## ", start + len(title))
        text = text[:start] + new + ("\n" + text[end + 1:] if end != -1 else "")
    RESULTS.write_text(text.rstrip("\n") + "\n")


def record(key: str, result: dict, title: str, section: Callable[[dict], list[str]]) -> None:
    """Keep one benchmark's `result` (with its "date") under `key` in bench/results.json and
    rewrite its section of RESULTS.md (`title`, rendered by `section` from all the results)."""
    raw = json.loads(RAW.read_text()) if RAW.exists() else {}
    raw[key] = result
    raw.setdefault("dates", {})[key] = result["date"]
    RAW.write_text(json.dumps(raw, indent=2))
    write_section(title, section(raw))
    print("\n".join(section(raw)))


def percentiles(values: list[float]) -> dict:
    """Count, p50, p95 and maximum of durations in seconds, in milliseconds."""
    values = sorted(values)
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"messages": len(values), "p50_ms": round(q[49] * 1000),
            "p95_ms": round(q[94] * 1000), "max_ms": round(values[-1] * 1000)}


def client(n: int, timeout: float = 300) -> aiohttp.ClientSession:
    """The load generator's HTTP client for `n` customers at once: aiohttp, whose work per
    request is a fraction of httpx's (httpx took 10 ms of CPU per turn, a fifth of the machine
    in the production profile, on the same two cores as the stack it measures)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=n + 5),
                                 timeout=aiohttp.ClientTimeout(total=timeout))


async def post_turn(session: aiohttp.ClientSession, url: str, body: dict) -> list:
    """One customer message over REST; the bot's replies (an HTTP error raises)."""
    async with session.post(url, json=body) as r:
        r.raise_for_status()
        return await r.json()


async def customer(session: aiohttp.ClientSession, url: str, turns: list[str], name: str,
                   token: str | None, latencies: list[float], conversations: int) -> None:
    """One simulated customer: `conversations` conversations of `turns` over REST, each
    message after the previous reply, each timed end to end into `latencies`."""
    for c in range(conversations):
        sender = f"{name}-{c}"
        for text in turns:
            body: dict = {"sender": sender, "message": text}
            if token:
                body["metadata"] = {"customer_token": token}
            start = time.perf_counter()
            await post_turn(session, url, body)
            latencies.append(time.perf_counter() - start)


async def load(url: str, turns: list[str], n: int, tokens: list[str | None],
               conversations: int, latencies: list[float] | None = None) -> dict:
    """`n` customers at once (after one warm-up conversation, not measured): turns, seconds,
    turns per second, p50/p95/p99 in ms. Each turn's seconds are also added to `latencies`."""
    measured: list[float] = []
    run = uuid.uuid4().hex[:8]  # new conversations at every call, however often it is called
    async with client(n) as session:
        await customer(session, url, turns, f"warm-{n}-{run}", tokens[0], [], 1)
        start = time.perf_counter()
        await asyncio.gather(*(customer(session, url, turns, f"c{n}-{i}-{run}",
                                        tokens[i % len(tokens)], measured, conversations)
                               for i in range(n)))
        elapsed = time.perf_counter() - start
    if latencies is not None:
        latencies += measured
    return summary(n, measured, elapsed)


def summary(n: int, latencies: list[float], seconds: float) -> dict:
    """Turns, seconds, turns per second and p50/p95/p99 in ms of turns timed over `seconds`."""
    q = statistics.quantiles(sorted(latencies), n=100, method="inclusive")
    return {"customers": n, "turns": len(latencies), "seconds": round(seconds, 2),
            "turns_per_second": round(len(latencies) / seconds, 2),
            "p50_ms": round(q[49] * 1000), "p95_ms": round(q[94] * 1000),
            "p99_ms": round(q[98] * 1000)}


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy so far (all cores; /proc/stat)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_until_quiet(share: float = 0.1, window: float = 0.5, longest: float = 60.0) -> float:
    """Return once the machine uses less than `share` of a core over `window` seconds: a stack
    still working through what the last load left (the log worker, the outbox) would otherwise
    take CPU from the next measurement. The seconds waited."""
    start = time.monotonic()
    used = busy_seconds()
    while time.monotonic() - start < longest:
        time.sleep(window)
        now = busy_seconds()
        if now - used < share * window:
            break
        used = now
    return round(time.monotonic() - start, 1)


def bench_env(var_dir: Path, ports: Ports, **overrides: str) -> dict[str, str]:
    """The benchmarks' embedded environment: the stack on `ports`, its data in `var_dir`, fresh
    secrets, and no per-sender rate limit (the load itself must not be throttled)."""
    from bot.keys import SECRETS, generate

    return environment({
        "SPORTELLO_PROFILE": "embedded", "SPORTELLO_VAR_DIR": str(var_dir),
        "DATABASE_URL": f"sqlite:///{var_dir / 'sportello.db'}",
        **ports.env(),
        "RATE_LIMIT_MESSAGES": "1000000",
        # fresh secrets (the production profile refuses published or weak ones)
        **{name: generate() for name in SECRETS},
        **overrides,
    })


@contextmanager
def settings_of(env: dict[str, str]) -> Iterator[None]:
    """This process's settings and database engines follow `env` until the block ends."""
    from bot.persistence import db
    from bot.settings import reset_settings

    saved = dict(os.environ)
    os.environ.update(env)
    reset_settings()
    db.get_engine.cache_clear()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset_settings()
        db.get_engine.cache_clear()


@contextmanager
def stack(env: dict[str, str], ports: Ports, which: Iterable[str], logs: Path,
          model: Path | None = None) -> Iterator[Launcher]:
    """The product's processes `which`, started with `env` on `ports` and up; stopped when the
    block ends. Their logs in `logs`."""
    from bot.runner import ensure_model

    model = model or (ensure_model() if "rasa" in which else None)
    with Launcher(env, services(model, ports, which, log_dir=logs)) as launcher:
        yield launcher


def production_env(env: dict[str, str], redis_db: str = "8") -> list[str]:
    """The production profile's settings, with three fresh PostgreSQL databases (the log, the
    tracker store, the event stream); their names, to be dropped afterwards."""
    names = create_pg_databases(3)
    env.update({"SPORTELLO_PROFILE": "production", "DATABASE_URL": f"{PG_SERVER}/{names[0]}",
                "PG_HOST": "127.0.0.1", "PG_PORT": "5432", "PG_USER": "postgres",
                "PG_PASSWORD": "", "RASA_TRACKER_DB": names[1], "RASA_EVENTS_DB": names[2],
                "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "6379", "REDIS_DB": redis_db,
                "RABBITMQ_HOST": "127.0.0.1", "RABBITMQ_PORT": "5672", "RABBITMQ_USER": "guest",
                "RABBITMQ_PASSWORD": "guest",
                "RABBITMQ_EXCHANGE": _broker_name(names), "RABBITMQ_QUEUE": _broker_name(names),
                "SOCKETIO_REDIS_CHANNEL": f"sportello-bench-{uuid.uuid4().hex[:8]}",
                # real delivery configured (the benchmark sends no one-time code)
                "SMTP_HOST": "127.0.0.1", "SMTP_SECURITY": "none",
                "SMTP_FROM": "no-reply@lucenordenergia.example", "SMS_TWILIO_ACCOUNT_SID":
                "AC" + "0" * 32, "SMS_TWILIO_AUTH_TOKEN": uuid.uuid4().hex,
                "SMS_FROM": "+14155550100"})
    return names


def _broker_name(databases: list[str]) -> str:
    return f"sportello-bench-{databases[2]}"


def drop_production(databases: list[str]) -> None:
    """What `production_env` created: its databases, its RabbitMQ exchange and queue."""
    import asyncio

    from bot import event_relay

    name = _broker_name(databases)
    asyncio.run(event_relay.drop(name, name))
    drop_pg_databases(databases)


def seed(env: dict[str, str]) -> None:
    """The demo customers in the stack's database: the demo seed in the embedded profile, the
    same customers as ordinary data in production (which refuses the demo). Call it inside
    `settings_of(env)`."""
    from bot.crm.seed import seed_demo
    from bot.persistence.db import migrate

    migrate()
    seed_demo(mark=env.get("SPORTELLO_PROFILE") != "production")


def create_pg_databases(n: int, prefix: str = "sportello_bench") -> list[str]:
    from bot.persistence.db import ensure_pg_database

    names = [f"{prefix}_{uuid.uuid4().hex[:10]}" for _ in range(n)]
    for name in names:
        ensure_pg_database(f"{PG_SERVER}/{name}")
    return names


def drop_pg_databases(names: Iterable[str]) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT", future=True)
    with engine.connect() as c:
        for name in names:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def quiet_rasa() -> None:
    """Less noise, and no shared training cache: timings are honest and other people's
    trainings are not disturbed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    os.environ["RASA_MAX_CACHE_SIZE"] = "0"
    os.environ.setdefault("RASA_CACHE_DIRECTORY",
                          str(Path(tempfile.gettempdir()) / "sportello-bench-rasa-cache"))


def parse_override(text: str) -> tuple[str, str | None, Any]:
    """`Component.key=value` sets a setting (value read as YAML); `-Component` removes it.
    `Component#2` is the second component of that name (e.g. the char n-gram featurizer)."""
    if text.startswith("-"):
        return text[1:], None, None
    target, _, value = text.partition("=")
    component, _, key = target.rpartition(".")
    if not component or not key or not _:
        raise ValueError(f"expected Component.key=value or -Component, got {text!r}")
    return component, key, yaml.safe_load(value)


def _named(pipeline: list[dict], name: str) -> list[dict]:
    """The components called `name` (full or short class name), or its `#n`-th one."""
    name, _, nth = name.partition("#")
    found = [c for c in pipeline if name in (c["name"], c["name"].rsplit(".", 1)[-1])]
    return found[int(nth) - 1:int(nth)] if nth else found


def apply_overrides(config: dict, overrides: list[str]) -> dict:
    """A copy of `config` with the pipeline changed by `overrides` (see parse_override)."""
    config = json.loads(json.dumps(config))
    for text in overrides:
        name, key, value = parse_override(text)
        found = _named(config["pipeline"], name)
        if not found:
            raise ValueError(f"no component {name!r} in the pipeline")
        if key is None:
            config["pipeline"] = [c for c in config["pipeline"]
                                  if not any(c is f for f in found)]
        else:
            for component in found:
                component[key] = value
    return config


def load_config(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def nlu_config(config: dict) -> dict:
    """Only what an NLU training reads (no policies: they would be ignored anyway)."""
    return {k: v for k, v in config.items() if k not in ("policies",)}


def train_model(config: dict, nlu_data: Path, out: Path, domain: Path | None = None) -> Path:
    """Train an NLU-only model with the Rasa Python API; returns the model archive."""
    from rasa.model_training import train_nlu

    out.mkdir(parents=True, exist_ok=True)
    config_file = out / "config.yml"
    config_file.write_text(yaml.safe_dump(nlu_config(config), sort_keys=False, allow_unicode=True))
    model = train_nlu(str(config_file), str(nlu_data), str(out / "models"),
                      domain=str(domain) if domain else None)
    if not model:
        raise RuntimeError("Rasa did not produce a model")
    return Path(model)


async def _parse(agent, texts: list[str]) -> list[dict]:
    return [await agent.parse_message(text) for text in texts]


def parse_all(agent, texts: list[str]) -> list[dict]:
    return asyncio.run(_parse(agent, texts))
