"""`python -m bot run`: set up and start the whole product, stop it cleanly on Ctrl-C."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bot.settings import ROOT, get_settings

TRAINING_INPUTS = ("config.yml", "domain", "data")


def fingerprint() -> str:
    """A hash of everything the model is trained from."""
    digest = hashlib.sha256()
    for name in TRAINING_INPUTS:
        path = ROOT / name
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            digest.update(str(f.relative_to(ROOT)).encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def model_path() -> Path:
    return ROOT / "models" / f"sportello-{fingerprint()}.tar.gz"


def ensure_model(force: bool = False) -> Path:
    """Train only when the data or config changed (the model is named after their hash)."""
    target = model_path()
    if target.exists() and not force:
        return target
    target.parent.mkdir(exist_ok=True)
    print(f"training the model ({target.name}); this takes a few minutes...", flush=True)
    subprocess.run(
        [sys.executable, "-m", "rasa", "train", "--config", "config.yml", "--domain", "domain",
         "--data", "data", "--out", "models", "--fixed-model-name", target.name[:-7]],
        cwd=ROOT, check=True, env=rasa_env(),
    )
    return target


def endpoints_file() -> str:
    return "endpoints.production.yml" if get_settings().profile == "production" else "endpoints.yml"


# credentials.yml reads the channels' secrets from these; Rasa refuses to start when one is
# unset, so an unconfigured channel gets an empty value (and refuses every request).
CHANNEL_VARIABLES = (
    "WHATSAPP_VERIFY_TOKEN", "WHATSAPP_APP_SECRET", "WHATSAPP_TOKEN", "WHATSAPP_PHONE_NUMBER_ID",
    "TELEGRAM_TOKEN", "TELEGRAM_BOT_NAME", "TELEGRAM_WEBHOOK_URL", "TELEGRAM_SECRET_TOKEN",
    "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_NUMBER", "TWILIO_WEBHOOK_URL",
    "MESSENGER_VERIFY_TOKEN", "MESSENGER_APP_SECRET", "MESSENGER_PAGE_TOKEN",
)


def with_channel_defaults(env: dict[str, str]) -> dict[str, str]:
    for name in CHANNEL_VARIABLES:
        env.setdefault(name, "")
    return env


def rasa_env() -> dict[str, str]:
    """The environment of the Rasa processes: endpoints.yml and credentials.yml read these
    variables."""
    s = get_settings()
    env = with_channel_defaults(dict(os.environ))
    env.setdefault("SPORTELLO_VAR_DIR", str(s.var_dir))
    env.setdefault("ACTION_SERVER_URL", s.action_server_url)
    # endpoints*.yml sends the action server's token; every process shares the same secrets
    # (in the embedded profile they were generated into var/secrets.env).
    env.setdefault("ACTION_SERVER_TOKEN", s.action_server_token)
    env.setdefault("RASA_TOKEN", s.rasa_token)
    env.setdefault("CUSTOMER_TOKEN_SECRET", s.customer_token_secret)
    env.setdefault("SPORTELLO_SECRET_KEY", s.secret_key)
    env.setdefault("PYTHONPATH", str(ROOT))
    env.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("RASA_TELEMETRY_ENABLED", "false")
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


def _port(url: str, default: int) -> int:
    from urllib.parse import urlparse

    return urlparse(url).port or default


def rasa_command(model: Path, port: int | None = None) -> list[str]:
    s = get_settings()
    port = port or _port(s.rasa_url, 5005)
    # Rasa takes the HTTP API's token only as a flag (visible in this machine's process list,
    # as for any `rasa run`); CORS only for the site's origins; loopback unless RASA_HOST.
    command = [sys.executable, "-m", "rasa", "run", "--model", str(model),
               "--interface", s.rasa_host, "--port", str(port),
               "--endpoints", endpoints_file(), "--credentials", "credentials.yml",
               "--enable-api", f"--auth-token={s.rasa_token}"]  # a token may start with "-"
    if s.cors_origins:
        command += ["--cors", *s.cors_origins]
    return command


def action_command(port: int | None = None) -> list[str]:
    """The action server (bot.action_server): loopback by default, token required."""
    port = port or _port(get_settings().action_server_url, 5055)
    return [sys.executable, "-m", "bot", "actions", "--port", str(port)]


def desk_command(port: int | None = None) -> list[str]:
    port = port or _port(get_settings().desk_url, 5006)
    return [sys.executable, "-m", "bot", "desk", "--port", str(port)]


def site_command(port: int | None = None) -> list[str]:
    port = port or _port(get_settings().site_url, 5007)
    return [sys.executable, "-m", "bot", "site", "--port", str(port)]


def worker_command() -> list[str]:
    """The log worker (bot.log_worker): no port, one for any number of desks."""
    return [sys.executable, "-m", "bot", "worker"]


def ensure_events_database() -> None:
    """Production: Rasa's SQL event broker needs its database to exist."""
    s = get_settings()
    if s.events_database_url.startswith("postgresql"):
        from bot.crm.db import ensure_pg_database

        ensure_pg_database(s.events_database_url)


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 400,
                  log: Path | None = None) -> None:
    """Wait until `url` answers; fail at once, with the log's tail, if `proc` dies."""
    tail = (lambda: "\n" + log.read_text()[-4000:]) if log else (lambda: "")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{' '.join(map(str, proc.args[:4]))} exited with code {proc.returncode}{tail()}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s{tail()}")


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 15
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


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
    lines.append("Ctrl-C stops everything.")
    return "\n".join(lines)


def run(with_shell: bool = False) -> int:
    from bot.crm.db import migrate
    from bot.crm.seed import is_empty, seed_demo

    from bot.desk.demo import has_desk_users, seed_desk_users

    from bot.logmask import install
    from bot.production import enforce

    install()
    os.chdir(ROOT)
    private_var_dir()
    migrate()
    s = get_settings()
    if s.demo and is_empty():
        print(f"loading demo data: {seed_demo()} customers", flush=True)
    if s.demo and not has_desk_users():
        print(f"creating the demo desk users: {seed_desk_users()}", flush=True)
    enforce("stack")
    ensure_events_database()
    model = ensure_model()
    env = rasa_env()
    procs: list[subprocess.Popen] = []

    def _terminate(signum, frame):  # SIGTERM behaves like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        actions = subprocess.Popen(action_command(), cwd=ROOT, env=env, start_new_session=True)
        procs.append(actions)
        action_port = _port(get_settings().action_server_url, 5055)
        wait_until_up(f"http://127.0.0.1:{action_port}/health", actions)
        if with_shell:
            shell = subprocess.Popen(
                [sys.executable, "-m", "rasa", "shell", "--model", str(model),
                 "--endpoints", endpoints_file()], cwd=ROOT, env=env)
            return shell.wait()
        rasa = subprocess.Popen(rasa_command(model), cwd=ROOT, env=env, start_new_session=True)
        procs.append(rasa)
        desk = subprocess.Popen(desk_command(), cwd=ROOT, env=env, start_new_session=True)
        procs.append(desk)
        site = subprocess.Popen(site_command(), cwd=ROOT, env=env, start_new_session=True)
        procs.append(site)
        worker = subprocess.Popen(worker_command(), cwd=ROOT, env=env, start_new_session=True)
        procs.append(worker)
        wait_until_up(f"{get_settings().rasa_url}/", rasa)
        wait_until_up(f"{get_settings().desk_url}/health", desk)
        wait_until_up(f"{get_settings().site_url}/health", site)
        print(banner(), flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("a process stopped unexpectedly; stopping the rest", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    finally:
        stop(procs)
