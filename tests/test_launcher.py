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


def _sleeper(name: str, tmp_path) -> Service:
    return Service(name, [sys.executable, "-c", "import time; time.sleep(600)"],
                   log=tmp_path / f"{name}.log")


def test_a_dead_replica_is_started_again_and_anything_else_stops_the_stack(tmp_path,
                                                                         monkeypatch):
    """`python -m bot run --replicas N` supervises its processes (bot.runner.supervise): a
    Rasa server or action server killed with -9 is started again, as an orchestrator would;
    the log worker dying ends the stack; a replica that dies right after its start is not
    restarted in a loop."""
    import signal

    from bot import launcher as launcher_module
    from bot.runner import is_replica, supervise

    assert is_replica("rasa-2") and is_replica("actions-1")
    assert not is_replica("rasa") and not is_replica("worker") and not is_replica("desk")
    launcher = Launcher(environment(), [_sleeper(n, tmp_path)
                                        for n in ("rasa-1", "rasa-2", "worker")])
    monkeypatch.setattr(launcher_module, "CRASH_LOOP_SECONDS", 0.0)
    with launcher:
        first = launcher["rasa-1"].proc
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        os.killpg(launcher["worker"].proc.pid, signal.SIGKILL)
        launcher["worker"].proc.wait()
        stopped = supervise(launcher, replicas=2, poll=0.05)
        assert [s.name for s in stopped] == ["worker"]
        assert launcher["rasa-1"].proc is not first and launcher["rasa-1"].proc.poll() is None
        assert launcher["rasa-2"].proc.poll() is None
        launcher.restart("worker")
        # one restarted MAX_RESTARTS times lately is left dead, and ends the stack
        monkeypatch.setattr(launcher_module, "MAX_RESTARTS", 1)
        os.killpg(launcher["rasa-1"].proc.pid, signal.SIGKILL)
        launcher["rasa-1"].proc.wait()
        assert [s.name for s in supervise(launcher, replicas=2, poll=0.05)] == ["rasa-1"]
        launcher.restart("rasa-1")
        # a replica that keeps dying at once is left dead, and ends the stack
        monkeypatch.setattr(launcher_module, "MAX_RESTARTS", 5)
        monkeypatch.setattr(launcher_module, "CRASH_LOOP_SECONDS", 3600.0)
        os.killpg(launcher["rasa-2"].proc.pid, signal.SIGKILL)
        launcher["rasa-2"].proc.wait()
        assert [s.name for s in supervise(launcher, replicas=2, poll=0.05)] == ["rasa-2"]
    # without replicas nothing is restarted
    single = Launcher(environment(), [_sleeper("rasa", tmp_path)])
    with single:
        os.killpg(single["rasa"].proc.pid, signal.SIGKILL)
        single["rasa"].proc.wait()
        assert [s.name for s in supervise(single, poll=0.05)] == ["rasa"]
