"""The load balancer of the replicated production layout: HAProxy, configured from
deploy/haproxy/haproxy.cfg.

`python -m bot run --profile production --replicas N`, the replica tests and the replica
benchmark start N Rasa servers and N action servers on ports of their own and one HAProxy in
front of them: customers reach the Rasa servers at the public address (RASA_URL), the Rasa
servers reach the action servers at ACTION_SERVER_URL, agents reach the desk at DESK_URL: each
of those is the balancer. This module only fills the repository's configuration with the
addresses; HAProxy does the balancing, the health checks and the stickiness.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from string import Template

from bot.settings import ROOT

CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
HEALTH_PATH = "/balancer-health"
# Requests at once per Rasa server (REST and the HTTP API; socket.io's long-lived connections
# are not counted against it); the rest wait in HAProxy's queue. More at once does not make a
# turn faster: a Rasa server is one process on one core.
RASA_MAXCONN = 32
STATS_PATH = "/stats;csv"


class BalancerMissing(RuntimeError):
    """HAProxy is not installed."""


@dataclass(frozen=True)
class Layout:
    """Where the balancer listens (public, actions, desk) and where each backend process does,
    all on `host`."""

    public: int
    actions: int
    desk: int
    rasa_servers: tuple[int, ...]
    action_servers: tuple[int, ...]
    desk_servers: tuple[int, ...]
    stats: int
    host: str = "127.0.0.1"


def _servers(prefix: str, ports: tuple[int, ...], host: str, options: str) -> str:
    return "\n".join(f"    server {prefix}{i} {host}:{port} {options.format(name=f'{prefix}{i}')}"
                     for i, port in enumerate(ports, 1))


def render(layout: Layout) -> str:
    """The repository's configuration with `layout`'s addresses."""
    h = layout.host
    return Template(CONFIG.read_text()).safe_substitute(
        public_bind=f"{h}:{layout.public}", actions_bind=f"{h}:{layout.actions}",
        desk_bind=f"{h}:{layout.desk}", stats_bind=f"{h}:{layout.stats}",
        rasa_servers=_servers("rasa", layout.rasa_servers, h, f"check maxconn {RASA_MAXCONN}"),
        # the socket.io backend follows the health of the same servers
        rasa_socketio_servers=_servers("rasa", layout.rasa_servers, h,
                                       "track rasa/{name} cookie {name}"),
        action_servers=_servers("actions", layout.action_servers, h, "check"),
        desk_servers=_servers("desk", layout.desk_servers, h, "check cookie {name}"))


def haproxy() -> str:
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if Path(p).exists()), None)
    if not found:
        raise BalancerMissing("HAProxy is not installed: `apt-get install haproxy` (Debian's "
                              "package), or run without --replicas")
    return found


def write(layout: Layout, path: Path) -> Path:
    """Render `layout` to `path` and have HAProxy check it (it refuses an invalid file)."""
    path.write_text(render(layout))
    result = subprocess.run([haproxy(), "-c", "-q", "-f", str(path)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise ValueError(f"HAProxy refuses {path}: {result.stdout}{result.stderr}")
    return path


def stats_url(config: Path) -> str:
    """The address of the statistics of the balancer configured by `config`."""
    lines = config.read_text().splitlines()
    start = lines.index("listen stats")
    bind = next(line.split()[1] for line in lines[start:] if line.strip().startswith("bind "))
    return f"http://{bind}{STATS_PATH}"


def command(config: Path) -> list[str]:
    """HAProxy in the foreground (stopped with its process group, like the other services)."""
    return [haproxy(), "-f", str(config), "-db"]


def _column(stats_url: str, column: str) -> dict[str, str]:
    """One column of HAProxy's statistics (`stats_url`: http://host:port/stats;csv) for each
    backend server ("rasa/rasa1": ...)."""
    import csv
    import io

    import httpx

    rows = csv.DictReader(io.StringIO(httpx.get(stats_url, timeout=5).text.lstrip("# ")))
    return {f"{r['pxname']}/{r['svname']}": r[column] for r in rows
            if r["svname"] not in ("FRONTEND", "BACKEND")}


def sessions(stats_url: str) -> dict[str, int]:
    """Requests each backend server has served so far ("rasa/rasa1": 12, ...)."""
    return {k: int(v or 0) for k, v in _column(stats_url, "stot").items()}


def open_sessions(stats_url: str) -> dict[str, int]:
    """Connections open right now to each backend server (a socket.io websocket is one)."""
    return {k: int(v or 0) for k, v in _column(stats_url, "scur").items()}


def status(stats_url: str) -> dict[str, str]:
    """Each backend server's state as HAProxy's health checks see it ("UP", "DOWN", ...)."""
    return _column(stats_url, "status")


def wait_all_up(stats_url: str, timeout: float = 60) -> dict[str, str]:
    """Wait until HAProxy's health checks see every backend server up; their states."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        states = status(stats_url)
        if all(state.startswith("UP") for state in states.values()):
            return states
        if time.monotonic() > deadline:
            raise TimeoutError(f"not every server is up after {timeout:.0f} s: {states}")
        time.sleep(0.2)
