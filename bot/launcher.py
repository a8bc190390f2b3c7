"""Starting Sportello's processes: the one launcher of `make run` (bot.runner), the test stacks
(tests/stack.py) and the benchmarks (bench/).

A stack is a list of `Service`s (the action server, the Rasa server, the desk, the demo site, the
log worker, in the order they start) and an environment. `Launcher` starts them, each in its own
session (so that stopping one stops its children), waits until each answers on its health URL
(fails at once, with the tail of its log, if one dies), restarts one, and stops them all. What
differs between the places that start a stack is only the environment (`environment()` plus
their own variables), the ports (`Ports`) and where the logs go.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterable
from urllib.parse import urlparse

import httpx

from bot.settings import ROOT, get_settings

# credentials.yml reads the channels' secrets from these; Rasa refuses to start when one is
# unset, so an unconfigured channel gets an empty value (and refuses every request).
CHANNEL_VARIABLES = (
    "WHATSAPP_VERIFY_TOKEN", "WHATSAPP_APP_SECRET", "WHATSAPP_TOKEN", "WHATSAPP_PHONE_NUMBER_ID",
    "TELEGRAM_TOKEN", "TELEGRAM_BOT_NAME", "TELEGRAM_WEBHOOK_URL", "TELEGRAM_SECRET_TOKEN",
    "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_NUMBER", "TWILIO_WEBHOOK_URL",
    "MESSENGER_VERIFY_TOKEN", "MESSENGER_APP_SECRET", "MESSENGER_PAGE_TOKEN",
)
# Every process of every stack: the project on the path, quiet libraries.
QUIET = {"SQLALCHEMY_SILENCE_UBER_WARNING": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
         "RASA_TELEMETRY_ENABLED": "false"}
ALL = ("actions", "rasa", "desk", "site", "worker")
# A replica that dies sooner than this after its start is not started again (a crash loop is a
# configuration error to show, not to repeat).
CRASH_LOOP_SECONDS = 30.0
# nor one that died MAX_RESTARTS times within RESTART_WINDOW_SECONDS (it dies after its start:
# out of memory, a service it needs refused...)
MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 600.0


def with_channel_defaults(env: dict[str, str]) -> dict[str, str]:
    for name in CHANNEL_VARIABLES:
        env.setdefault(name, "")
    return env


def environment(overrides: dict[str, str] | None = None,
                base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (this process's environment by default) with the project on the path, quiet
    libraries (unless `base` says otherwise), an empty value for every unconfigured channel,
    and `overrides` on top."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = str(ROOT)
    for name, value in QUIET.items():
        env.setdefault(name, value)
    env.update(overrides or {})
    return with_channel_defaults(env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port(url: str, default: int) -> int:
    return urlparse(url).port or default


@dataclass(frozen=True)
class Ports:
    """Where a stack listens, on 127.0.0.1."""

    rasa: int
    actions: int
    desk: int
    site: int

    @classmethod
    def from_settings(cls) -> "Ports":
        s = get_settings()
        return cls(_port(s.rasa_url, 5005), _port(s.action_server_url, 5055),
                   _port(s.desk_url, 5006), _port(s.site_url, 5007))

    @classmethod
    def free(cls) -> "Ports":
        return cls(free_port(), free_port(), free_port(), free_port())

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{getattr(self, name)}"

    def env(self) -> dict[str, str]:
        """The settings' variables that point every process at these ports."""
        return {"RASA_URL": self.url("rasa"),
                "ACTION_SERVER_URL": f"{self.url('actions')}/webhook",
                "DESK_URL": self.url("desk"), "SITE_URL": self.url("site")}


def endpoints_file() -> str:
    return "endpoints.production.yml" if get_settings().profile == "production" else "endpoints.yml"


def rasa_command(model: Path, port: int | None = None) -> list[str]:
    s = get_settings()
    port = port or _port(s.rasa_url, 5005)
    # Rasa takes the HTTP API's token only as a flag (visible in this machine's process list,
    # as for any `rasa run`); CORS only for the site's origins; loopback unless RASA_HOST.
    command = [sys.executable, "-m", "bot.rasa_server", "run", "--model", str(model),
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


@dataclass
class Service:
    """One process of a stack: its command, the URL that answers once it is up (None: it has
    no port, like the log worker), its log file (None: this terminal), its working folder."""

    name: str
    command: list[str]
    health: str | None = None
    log: Path | None = None
    cwd: Path = ROOT
    proc: subprocess.Popen | None = field(default=None, repr=False)
    started: float = field(default=0.0, repr=False)
    restarts: list[float] = field(default_factory=list, repr=False)

    def uptime(self) -> float:
        """Seconds since the process was started."""
        return time.monotonic() - self.started

    def start(self, env: dict[str, str], append: bool = False) -> subprocess.Popen:
        self.started = time.monotonic()
        out: IO | None = open(self.log, "a" if append else "w") if self.log else None
        self.proc = subprocess.Popen(self.command, cwd=self.cwd, env=env, stdout=out,
                                     stderr=subprocess.STDOUT if out else None,
                                     start_new_session=True)
        if out:
            out.close()  # the child has its own copy
        return self.proc

    def wait_until_up(self, timeout: float = 400) -> None:
        if self.health:
            wait_until_up(self.health, self.proc, timeout, self.log)
        elif self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with code {self.proc.returncode}"
                               f"{_tail(self.log)}")


def services(model: Path | None, ports: Ports | None = None, which: Iterable[str] = ALL,
             log_dir: Path | None = None) -> list[Service]:
    """The product's processes named in `which` (a model is needed for "rasa"), on `ports`
    (the settings' by default), each logging to `log_dir`/NAME.log (or to this terminal)."""
    ports = ports or Ports.from_settings()
    made = {
        "actions": lambda: Service("actions", action_command(ports.actions),
                                   f"{ports.url('actions')}/health"),
        "rasa": lambda: Service("rasa", rasa_command(model, ports.rasa), f"{ports.url('rasa')}/"),
        "desk": lambda: Service("desk", desk_command(ports.desk), f"{ports.url('desk')}/health"),
        "site": lambda: Service("site", site_command(ports.site), f"{ports.url('site')}/health"),
        "worker": lambda: Service("worker", worker_command()),
    }
    out = []
    for name in which:
        service = made[name]()
        if log_dir is not None:
            service.log = log_dir / f"{name}.log"
        out.append(service)
    return out


def replicated_services(model: Path, ports: Ports, replicas: int, config_dir: Path,
                        log_dir: Path | None = None, desks: int | None = None) -> list[Service]:
    """The production layout on one machine: `replicas` action servers and Rasa servers and
    `desks` desks (as many as the replicas unless said) on ports of their own behind HAProxy
    (`bot.balancer`), which listens on `ports`' Rasa, action server and desk ports, as the
    settings' URLs say; the site and the log worker. Named actions-1.., rasa-1.., balancer,
    desk-1.., site, worker."""
    from bot import balancer

    desks = desks or replicas
    own = {name: tuple(free_port() for _ in range(count))
           for name, count in (("rasa", replicas), ("actions", replicas), ("desk", desks))}
    stats_port = free_port()
    config = balancer.write(balancer.Layout(ports.rasa, ports.actions, ports.desk, own["rasa"],
                                            own["actions"], own["desk"], stats_port),
                            config_dir / "haproxy.cfg")
    out = [Service(f"actions-{i}", action_command(port), f"http://127.0.0.1:{port}/health")
           for i, port in enumerate(own["actions"], 1)]
    out += [Service(f"rasa-{i}", rasa_command(model, port), f"http://127.0.0.1:{port}/")
            for i, port in enumerate(own["rasa"], 1)]
    # up once its health checks see a Rasa server and an action server
    out.append(Service("balancer", balancer.command(config),
                       f"{ports.url('rasa')}{balancer.HEALTH_PATH}"))
    out += [Service(f"desk-{i}", desk_command(port), f"http://127.0.0.1:{port}/health")
            for i, port in enumerate(own["desk"], 1)]
    out += [Service("site", site_command(ports.site), f"{ports.url('site')}/health"),
            Service("worker", worker_command())]
    if log_dir is not None:
        for service in out:
            service.log = log_dir / f"{service.name}.log"
    return out


class Launcher:
    """Starts `services` with `env`, waits until they are up, stops them (also as a context
    manager: `with Launcher(env, services) as stack: ...`)."""

    def __init__(self, env: dict[str, str], services: list[Service]) -> None:
        self.env = env
        self.services = {s.name: s for s in services}

    def __enter__(self) -> "Launcher":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __getitem__(self, name: str) -> Service:
        return self.services[name]

    @property
    def processes(self) -> list[subprocess.Popen]:
        return [s.proc for s in self.services.values() if s.proc is not None]

    def start(self, timeout: float = 400,
              on_up: Callable[[Service, float], None] | None = None) -> None:
        """Start every service, then wait until each is up (`on_up(service, seconds)` for
        each, in order)."""
        began = time.monotonic()
        for service in self.services.values():
            service.start(self.env)
        for service in self.services.values():
            service.wait_until_up(timeout)
            if on_up is not None:
                on_up(service, time.monotonic() - began)

    def restart(self, name: str, timeout: float = 400) -> None:
        """Stop one service and start it again, as an operator would."""
        service = self.services[name]
        stop([service.proc])
        service.start(self.env, append=True)
        service.wait_until_up(timeout)

    def running(self) -> bool:
        return all(p.poll() is None for p in self.processes)

    def dead(self) -> list[Service]:
        """The services whose process has exited."""
        return [s for s in self.services.values()
                if s.proc is not None and s.proc.poll() is not None]

    def revive(self, replaceable: Callable[[str], bool]
               ) -> tuple[list[Service], list[Service]]:
        """Start again each exited service that `replaceable` accepts, that ran for at least
        CRASH_LOOP_SECONDS (one that dies sooner is misconfigured, not unlucky) and was not
        restarted MAX_RESTARTS times lately, as a container orchestrator restarts a replica:
        (the services started again, the dead ones left). Up again once their health URL
        answers (a balancer's checks notice it), not waited for."""
        revived, left = [], []
        now = time.monotonic()
        for service in self.dead():
            recent = [t for t in service.restarts if now - t < RESTART_WINDOW_SECONDS]
            if replaceable(service.name) and service.uptime() >= CRASH_LOOP_SECONDS \
                    and len(recent) < MAX_RESTARTS:
                service.restarts = [*recent, now]
                service.start(self.env, append=True)
                revived.append(service)
            else:
                left.append(service)
        return revived, left

    def stop(self) -> None:
        """Stop every service, the last started first."""
        stop(list(reversed(self.processes)))


def _tail(log: Path | None) -> str:
    return "\n" + log.read_text()[-4000:] if log and log.exists() else ""


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 400,
                  log: Path | None = None) -> None:
    """Wait until `url` answers; fail at once, with the log's tail, if `proc` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{' '.join(map(str, proc.args[:4]))} exited with code "
                               f"{proc.returncode}{_tail(log)}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s{_tail(log)}")


def stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM to each process's group, SIGKILL to what is left after 15 seconds."""
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
