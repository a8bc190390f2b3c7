"""The log worker (`python -m bot worker`, bot.log_worker): drains the event stream batch
after batch, sweeps, survives a failing round, stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, select, text

from bot import log_worker

ROOT = Path(__file__).resolve().parent.parent


def test_follow_drains_the_backlog_sweeps_and_survives_an_error(monkeypatch):
    monkeypatch.setattr(log_worker, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(log_worker, "BATCH_PAUSE_SECONDS", 0)
    stopping = threading.Event()
    backlog = [100, 100, 7, 0, RuntimeError("database away"), 100, 3, 0]
    calls: list[str] = []

    def sync() -> int:
        item = backlog.pop(0) if backlog else 0
        calls.append(f"sync {item}")
        if isinstance(item, Exception):
            raise item
        if not backlog:
            stopping.set()
        return item

    def sweep() -> int:
        calls.append("sweep")
        return 0

    follow = threading.Thread(target=log_worker.follow, args=(stopping, sync, sweep))
    follow.start()
    follow.join(10)
    assert not follow.is_alive()
    # the whole backlog in one round (full batches of ingest.SYNC_BATCH follow each other; a
    # shorter one is the end of the stream and ends the round), then the first sweep; the next
    # round a poll interval later; the error costs one round only
    assert log_worker.ingest.SYNC_BATCH == 100
    assert calls == ["sync 100", "sync 100", "sync 7", "sweep", "sync 0",
                     "sync database away", "sync 100", "sync 3", "sync 0"]


def test_python_m_bot_worker_builds_the_log_and_stops_on_sigterm(tmp_path):
    var = tmp_path / "var"
    env = dict(os.environ, SPORTELLO_PROFILE="embedded", SPORTELLO_VAR_DIR=str(var),
               DATABASE_URL=f"sqlite:///{tmp_path / 'log.db'}", PYTHONPATH=str(ROOT),
               SQLALCHEMY_SILENCE_UBER_WARNING="1")
    env.pop("SPORTELLO_DEMO", None)
    events_url = _events_url(env)
    Path(events_url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(events_url, future=True)
    with engine.begin() as c:
        # the columns of Rasa's SQL event broker that the stream reader uses
        c.execute(text("CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id TEXT, "
                       "data TEXT)"))
        for i, event in enumerate([{"event": "session_started", "timestamp": 1000.0},
                                   {"event": "user", "timestamp": 1001.0, "text": "ciao",
                                    "parse_data": {"intent": {"name": "greet",
                                                              "confidence": 0.9}}}], 1):
            c.execute(text("INSERT INTO events (id, sender_id, data) VALUES (:i, 'w1', :d)"),
                      {"i": i, "d": json.dumps(event)})
    engine.dispose()
    log = tmp_path / "worker.log"
    proc = subprocess.Popen([sys.executable, "-m", "bot", "worker"], cwd=ROOT, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while _turns(env["DATABASE_URL"], "w1") != 1:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()


def _events_url(env: dict) -> str:
    """The event stream's URL in the embedded profile of `env` (as the worker computes it)."""
    out = subprocess.run([sys.executable, "-c", "from bot.settings import get_settings; "
                          "print(get_settings().events_database_url)"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _turns(url: str, sender: str) -> int | None:
    from bot.analytics.models import Conversation

    engine = create_engine(url, future=True)
    try:
        with engine.connect() as c:
            return c.execute(select(Conversation.turns)
                             .where(Conversation.sender_id == sender)).scalar()
    except Exception:  # not migrated yet
        return None
    finally:
        engine.dispose()


def test_the_heartbeat_says_whether_the_loop_goes_round(monkeypatch, tmp_path):
    """The worker has no port: its liveness probe (`python -m bot worker-alive`) reads the age
    of the file each round of its loop touches."""
    from bot.settings import reset_settings

    monkeypatch.setenv("SPORTELLO_VAR_DIR", str(tmp_path))
    reset_settings()
    try:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        probe = [sys.executable, "-m", "bot", "worker-alive"]
        assert not log_worker.alive()
        assert subprocess.run(probe, cwd=ROOT, env=env).returncode == 1  # never started
        stopping = threading.Event()

        def sync() -> int:
            stopping.set()
            return 0

        log_worker.follow(stopping, sync, lambda: 0)
        assert log_worker.alive()
        assert subprocess.run(probe, cwd=ROOT, env=env).returncode == 0
        # a loop that stopped going round: dead once the file is older than the limit
        assert not log_worker.alive(now=time.time() + log_worker.ALIVE_SECONDS + 1)
    finally:
        reset_settings()
