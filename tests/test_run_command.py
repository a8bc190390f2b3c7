"""`python -m bot run` (behind `make run`): sets up, starts, answers, and Ctrl-C stops it all."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bot.launcher import free_port

ROOT = Path(__file__).resolve().parent.parent


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is as good as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_run_starts_everything_and_ctrl_c_stops_everything(model_path, tmp_path):
    """Action server, Rasa server, desk, demo site and log worker start; Ctrl-C leaves no
    process behind."""
    rasa_port, action_port, desk_port = free_port(), free_port(), free_port()
    site_port = free_port()
    env = dict(os.environ, SPORTELLO_VAR_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite",
               RASA_URL=f"http://127.0.0.1:{rasa_port}",
               ACTION_SERVER_URL=f"http://127.0.0.1:{action_port}/webhook",
               DESK_URL=f"http://127.0.0.1:{desk_port}", SITE_URL=f"http://127.0.0.1:{site_port}",
               PYTHONPATH=str(ROOT), SQLALCHEMY_SILENCE_UBER_WARNING="1",
               SPORTELLO_PROFILE="embedded", OTP_DELIVERY="outbox")
    for name in ("CUSTOMER_TOKEN_SECRET", "RASA_TOKEN", "ACTION_SERVER_TOKEN",
                 "SPORTELLO_SECRET_KEY", "SPORTELLO_DEMO"):  # no configuration at all
        env.pop(name, None)
    log = tmp_path / "run.log"
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run"], cwd=ROOT, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 400
        while "Ctrl-C stops everything" not in log.read_text():
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        text = log.read_text()
        assert "loading demo data" in text and "C1000001" in text and "training" not in text
        # the terminal: a line per step and the banner; the libraries' output in var/logs
        assert "• migrating the database" in text and "Rasa server ready" in text
        assert not re.search(r"(?i)warn|deprecat|INFO ", text), text
        assert len(text.splitlines()) < 45, text
        for name in ("actions", "rasa", "desk", "site", "worker", "run"):
            assert (tmp_path / "logs" / f"{name}.log").exists(), name
        assert "rasa.core" in (tmp_path / "logs" / "rasa.log").read_text()
        reply = httpx.post(f"http://127.0.0.1:{rasa_port}/webhooks/rest/webhook",
                           json={"sender": "run-test", "message": "ciao"}, timeout=60).json()
        assert reply and "assistente virtuale" in reply[0]["text"]
        assert f"http://127.0.0.1:{desk_port}/" in text and "giulia / giulia-demo-pass" in text
        assert "creating the demo desk users" in text
        desk = httpx.get(f"http://127.0.0.1:{desk_port}/desk", follow_redirects=False)
        assert desk.status_code == 302 and desk.headers["location"] == "/login"
        assert f"Review console (CX leads): http://127.0.0.1:{desk_port}/console" in text
        console = httpx.get(f"http://127.0.0.1:{desk_port}/console", follow_redirects=False)
        assert console.status_code == 302 and console.headers["location"] == "/login"
        assert f"Demo page:  http://127.0.0.1:{site_port}/" in text
        page = httpx.get(f"http://127.0.0.1:{site_port}/")
        assert page.status_code == 200 and 'id="webchat"' in page.text
        servers = children(proc.pid)
        assert len(servers) == 5  # action server, Rasa server, desk, demo site, log worker
        worker = [pid for pid in servers if "worker" in Path(f"/proc/{pid}/cmdline").read_text()]
        assert len(worker) == 1
        # the log worker yields the CPU to the processes that answer customers
        assert os.getpriority(os.PRIO_PROCESS, worker[0]) >= os.getpriority(
            os.PRIO_PROCESS, proc.pid) + 10
        grandchildren = [c for s in servers for c in children(s)]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        deadline = time.monotonic() + 15  # the servers' own children may take a moment to go
        while [p for p in servers + grandchildren if alive(p)]:
            assert time.monotonic() < deadline, [p for p in servers + grandchildren if alive(p)]
            time.sleep(0.2)
    finally:
        if proc.poll() is None:  # a failed assertion: leave no server behind either
            for pid in children(proc.pid):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.kill()


def test_the_model_is_trained_only_when_data_config_or_nlu_components_change(tmp_path, monkeypatch):
    import shutil

    from bot import progress, runner

    for name in runner.TRAINING_INPUTS:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    monkeypatch.setattr(runner, "ROOT", tmp_path)
    first = runner.fingerprint()
    assert runner.fingerprint() == first
    # Python's bytecode cache is not an input; the NLU components' code is
    (tmp_path / "bot" / "nlu" / "__pycache__").mkdir(exist_ok=True)
    (tmp_path / "bot" / "nlu" / "__pycache__" / "x.cpython-310.pyc").write_bytes(b"\0")
    assert runner.fingerprint() == first
    component = tmp_path / "bot" / "nlu" / "linear_classifier.py"
    original = component.read_text()
    component.write_text(original + "\n# changed\n")
    assert runner.fingerprint() != first
    component.write_text(original)
    assert runner.fingerprint() == first
    (tmp_path / "models").mkdir()
    runner.model_path().write_bytes(b"model")
    monkeypatch.setattr(progress, "run_with_progress", lambda *a, **k: (_ for _ in ()).throw(
        AssertionError("trained although nothing changed")))
    assert runner.ensure_model() == runner.model_path()
    with open(tmp_path / "data" / "nlu" / "it" / "bills.yml", "a") as f:
        f.write("    - quanto pago di luce questo mese\n")
    assert runner.fingerprint() != first
    trained = []
    monkeypatch.setattr(progress, "run_with_progress", lambda cmd, *a: trained.append(cmd))
    runner.ensure_model()
    assert trained and "train" in trained[0]
