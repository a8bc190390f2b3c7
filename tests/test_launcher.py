"""The launcher of every stack (bot.launcher: `make run`, the test stacks, the benchmarks):
starts the services, waits until they answer, restarts one, stops them all; a service that dies
while starting fails at once with its log."""

from __future__ import annotations

import os
import sys

import httpx
import pytest

from bot.launcher import Launcher, Ports, Service, environment, services


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie is as good as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] == "Z"
    except OSError:
        return True


def test_a_desk_and_a_log_worker_start_restart_and_stop(tmp_path):
    ports = Ports.free()
    env = environment({"SPORTELLO_PROFILE": "embedded", "SPORTELLO_VAR_DIR": str(tmp_path),
                       "DATABASE_URL": f"sqlite:///{tmp_path / 'sportello.db'}",
                       "OTP_DELIVERY": "outbox", **ports.env()})
    env.pop("SPORTELLO_DEMO", None)
    launcher = Launcher(env, services(None, ports, ("desk", "worker"), log_dir=tmp_path))
    assert [s.name for s in launcher.services.values()] == ["desk", "worker"]
    assert launcher["desk"].health == f"{ports.url('desk')}/health"
    assert launcher["worker"].health is None  # no port: up once running
    with launcher:
        assert httpx.get(f"{ports.url('desk')}/health").json() == {"status": "ok"}
        first = launcher["worker"].proc.pid
        launcher.restart("worker")
        assert launcher["worker"].proc.pid != first and _gone(first)
        assert launcher.running()
        pids = [p.pid for p in launcher.processes]
    assert all(_gone(pid) for pid in pids)
    assert (tmp_path / "desk.log").exists() and (tmp_path / "worker.log").exists()


def test_a_service_that_dies_while_starting_fails_with_its_log(tmp_path):
    dying = Service("dying", [sys.executable, "-c", "print('no database'); raise SystemExit(3)"],
                    "http://127.0.0.1:9/health", tmp_path / "dying.log")
    with pytest.raises(RuntimeError, match=r"(?s)exited with code 3.*no database"):
        with Launcher(environment(), [dying]):
            pass
