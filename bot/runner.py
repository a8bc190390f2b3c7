"""`python -m bot run`: set up and start the whole product, stop it cleanly on Ctrl-C (the
processes are started by bot.launcher); the model, trained only when its inputs changed."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from bot.launcher import (
    ALL,
    Launcher,
    Ports,
    Service,
    endpoints_file,
    environment,
    replicated_services,
    services,
)
from bot.settings import ROOT, get_settings

# The model is trained from these, and with the project's own NLU components (bot/nlu): a
# change to one of them (what it stores in the model, say) trains a new model too.
TRAINING_INPUTS = ("config.yml", "domain", "data", "bot/nlu")
NAMES = {"actions": "action server", "rasa": "Rasa server", "desk": "agent desk",
         "site": "demo site", "worker": "log worker", "balancer": "load balancer (HAProxy)"}


def label(name: str) -> str:
    """'rasa-2' -> 'Rasa server 2'."""
    base, _, number = name.partition("-")
    return f"{NAMES[base]} {number}".strip()


def fingerprint() -> str:
    """A hash of everything the model is trained from."""
    digest = hashlib.sha256()
    for name in TRAINING_INPUTS:
        path = ROOT / name
        files = [path] if path.is_file() else sorted(
            p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for f in files:
            digest.update(str(f.relative_to(ROOT)).encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def model_path() -> Path:
    return ROOT / "models" / f"sportello-{fingerprint()}.tar.gz"


def ensure_model(force: bool = False) -> Path:
    """Train only when the data or config changed (the model is named after their hash);
    Rasa's output goes to var/logs/train.log, the terminal shows the progress."""
    from bot.progress import log_dir, run_with_progress, step

    target = model_path()
    if target.exists() and not force:
        return target
    target.parent.mkdir(exist_ok=True)
    log = log_dir() / "train.log"
    step(f"training the model ({target.name}, about a minute; Rasa's output: {log})")
    began = time.monotonic()
    run_with_progress(
        [sys.executable, "-m", "rasa", "train", "--config", "config.yml", "--domain", "domain",
         "--data", "data", "--out", "models", "--fixed-model-name", target.name[:-7]],
        log, ROOT, rasa_env())
    step(f"model trained in {time.monotonic() - began:.0f} s")
    return target


def rasa_env() -> dict[str, str]:
    """The environment of `make run`'s processes: endpoints.yml and credentials.yml read these
    variables."""
    s = get_settings()
    env = environment()
    env.setdefault("SPORTELLO_VAR_DIR", str(s.var_dir))
    env.setdefault("ACTION_SERVER_URL", s.action_server_url)
    # endpoints*.yml sends the action server's token; every process shares the same secrets
    # (in the embedded profile they were generated into var/secrets.env).
    env.setdefault("ACTION_SERVER_TOKEN", s.action_server_token)
    env.setdefault("RASA_TOKEN", s.rasa_token)
    env.setdefault("CUSTOMER_TOKEN_SECRET", s.customer_token_secret)
    env.setdefault("SPORTELLO_SECRET_KEY", s.secret_key)
    env.setdefault("PYTHONWARNINGS", "ignore")
    private_var_dir()
    return env


def private_var_dir() -> Path:
    """The var folder (databases, secrets, logs), readable by its owner only; files created by
    this process and its children are private too."""
    var_dir = get_settings().var_dir
    os.umask(0o077)
    var_dir.mkdir(parents=True, exist_ok=True)
    var_dir.chmod(0o700)
    for path in var_dir.iterdir():
        if path.is_file():
            path.chmod(0o600)
    return var_dir


def ensure_events_database() -> None:
    """Production: Rasa's SQL event broker needs its database to exist."""
    s = get_settings()
    if s.events_database_url.startswith("postgresql"):
        from bot.persistence.db import ensure_pg_database

        ensure_pg_database(s.events_database_url)


def banner() -> str:
    from bot.crm.seed import DEMO

    s = get_settings()
    lines = [
        "",
        "Sportello is running (profile: %s)." % s.profile,
        f"  Demo page:  {s.site_url}/  (English: {s.site_url}/en; demo sign-in on the page)",
        f"  REST:       POST {s.rasa_url}/webhooks/rest/webhook"
        '  {"sender": "me", "message": "ciao", "metadata": {"customer_token": "..."}}',
        f"  socket.io:  {s.rasa_url}/socket.io  (events user_uttered / bot_uttered)",
        f"  HTTP API:   {s.rasa_url}  (token auth)",
        "  Terminal:   make shell",
        "  A customer token for a demo customer: .venv/bin/python -m bot token C1000001",
    ]
    if s.demo:
        lines += ["  One-time codes (the demo's outbox):  .venv/bin/python -m bot outbox",
                  "Demo customers:"]
        lines += [f"  {code}  {what}" for code, what in DEMO.items()]
    from bot.desk.demo import DEMO_USERS

    lines.append(f"Agent desk: {s.desk_url}/  (live chat hours: {s.desk_hours}; DESK_HOURS)")
    if s.demo:
        lines += [f"  {u} / {pw}  {role}, {','.join(sk) or '-'} ({','.join(lg)})"
                  for u, pw, role, _, sk, lg in DEMO_USERS]
    lines.append(f"Review console (CX leads): {s.desk_url}/console  (lucia, or admin to reveal "
                 "personal data)")
    lines.append(f"Logs: {s.var_dir / 'logs'}/  (one file per process; errors are also shown "
                 "here)")
    lines.append("Ctrl-C stops everything.")
    return "\n".join(lines)


def is_replica(name: str) -> bool:
    """A Rasa server, action server or desk of the replicated layout (`rasa-1`, `desk-2`...)."""
    kind, _, number = name.partition("-")
    return kind in ("rasa", "actions", "desk") and number.isdigit()


def supervise(launcher: Launcher, replicas: int = 0, poll: float = 0.5) -> list[Service]:
    """Wait while the stack runs; the services that stopped, once one stopped for good. With
    replicas, a dead Rasa server, action server or desk is started again (the balancer sends
    its customers and agents to the others meanwhile); any other process stopping stops the
    stack."""
    while True:
        revived, dead = launcher.revive(is_replica) if replicas else ([], launcher.dead())
        for service in revived:
            print(f"{label(service.name)} stopped; started again (logs: {service.log})",
                  flush=True)
        if dead:
            return dead
        time.sleep(poll)


def run(with_shell: bool = False, replicas: int = 0) -> int:
    """Every process of the profile, one of each; with `replicas`, that many Rasa servers and
    action servers behind HAProxy (production only)."""
    import logging

    from bot.crm.seed import is_empty, seed_demo
    from bot.desk.demo import has_desk_users, seed_desk_users
    from bot.logmask import install
    from bot.persistence.db import migrate
    from bot.production import enforce
    from bot.progress import ErrorEcho, log_dir, step

    install()
    os.chdir(ROOT)
    private_var_dir()
    logs = log_dir()
    # this process's own library warnings and log lines go to var/logs/run.log too
    logging.basicConfig(filename=logs / "run.log", level=logging.INFO, force=True)
    logging.captureWarnings(True)
    step("migrating the database")
    migrate()
    s = get_settings()
    if s.demo and is_empty():
        step(f"loading demo data: {seed_demo()} customers")
    if s.demo and not has_desk_users():
        step(f"creating the demo desk users: {seed_desk_users()}")
    enforce("stack")
    ensure_events_database()
    model = ensure_model()
    env = rasa_env()
    which = ("actions",) if with_shell else ALL
    if replicas:
        if s.profile != "production":
            print("--replicas needs the production profile (--profile production): the "
                  "embedded one keeps its stores in this machine's files", file=sys.stderr)
            return 2
        started = replicated_services(model, Ports.from_settings(), replicas, s.var_dir, logs)
    else:
        started = services(model, which=which, log_dir=logs)
    launcher = Launcher(env, started)
    echo = ErrorEcho({service.name: service.log for service in started})

    def _terminate(signum: int, frame: FrameType | None):  # SIGTERM behaves like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        step(f"starting {', '.join(label(service.name) for service in started)} "
             f"(logs: {logs}/)")
        echo.start()
        launcher.start(on_up=lambda service, seconds: print(
            f"  {label(service.name)} ready ({seconds:.0f} s)", flush=True))
        if with_shell:
            shell = subprocess.Popen(
                [sys.executable, "-m", "rasa", "shell", "--model", str(model),
                 "--endpoints", endpoints_file()], cwd=ROOT, env=env)
            return shell.wait()
        print(banner(), flush=True)
        stopped = supervise(launcher, replicas)
        for service in stopped:
            print(f"{label(service.name)} stopped unexpectedly; the end of {service.log}:\n"
                  f"{service.log.read_text(errors='replace')[-2000:]}", file=sys.stderr)
        print("a process stopped unexpectedly; stopping the rest", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    finally:
        echo.stop()
        launcher.stop()
