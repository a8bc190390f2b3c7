"""The log worker (`python -m bot worker`): builds the review console's conversation log from
Rasa's event stream, apart from the desk.

It reads the new events in batches (`ingest.sync`), with a short pause between full batches
while it catches up with a backlog (on SQLite the database has one writer: a desk writing a
customer's cancellation must not queue behind the whole backlog), looks again every second once
it has reached the end of the stream, and every thirty seconds ends the idle sessions and
refreshes the handover figures (`ingest.sweep`).

In production it also relays Rasa's events from RabbitMQ into the event stream's table, in a
thread of its own (`bot.event_relay`).

One worker is enough for any number of desk processes; more than one is safe (the stream cursor
moves in the same transaction as the records, locked on PostgreSQL; one relay at a time holds
the queue, the others wait as standbys), only useless for the log. SIGTERM and
Ctrl-C stop it between two batches.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Callable

from bot import event_relay
from bot.analytics import ingest
from bot.settings import get_settings

log = logging.getLogger(__name__)
POLL_SECONDS = 1.0
BATCH_PAUSE_SECONDS = 0.05
SWEEP_SECONDS = 30.0
# The log is not on a customer's path: when the machine is busy, the processes that answer
# customers go first and the log catches up a moment later (a lower CPU priority, as for any
# background job).
NICENESS = 10


# The worker has no port: its liveness is this file's age (`python -m bot worker-alive`, a
# container's exec probe), touched at every round of `follow`.
HEARTBEAT = "worker.alive"
ALIVE_SECONDS = 120.0


def heartbeat_file() -> Path:
    return get_settings().var_dir / HEARTBEAT


def alive(now: float | None = None) -> bool:
    """Whether the worker's loop went round in the last `ALIVE_SECONDS`."""
    try:
        age = (time.time() if now is None else now) - heartbeat_file().stat().st_mtime
    except OSError:
        return False
    return age < ALIVE_SECONDS


def _beat(path: Path) -> None:
    try:
        path.touch()
    except OSError:  # the var folder is gone: the probe will say so
        pass


def follow(stopping: threading.Event, sync: Callable[[], int] = ingest.sync,
           sweep: Callable[[], int] = ingest.sweep) -> None:
    """Keep the log up to date until `stopping` is set; an error is logged and the log catches
    up on the next round."""
    last_sweep: float | None = None
    beat = heartbeat_file()
    while not stopping.is_set():
        _beat(beat)
        try:
            # A full batch leaves more to read (a backlog): the next follows at once. A shorter
            # one reached the end of the stream: the next look is a poll interval later, so
            # that under a steady stream a batch holds a second of events, not one turn's (each
            # batch costs its transaction and its reads of the conversations it touches).
            while sync() >= ingest.SYNC_BATCH and not stopping.is_set():
                _beat(beat)
                stopping.wait(BATCH_PAUSE_SECONDS)
            if last_sweep is None or time.monotonic() - last_sweep >= SWEEP_SECONDS:
                sweep()
                last_sweep = time.monotonic()
        except Exception:  # the database may be away for a moment
            log.exception("conversation log")
        stopping.wait(POLL_SECONDS)


def serve() -> None:
    """The worker process: migrate, refuse a wrong production configuration, follow."""
    from bot.logmask import install
    from bot.persistence.db import migrate
    from bot.production import enforce

    # warnings and errors of every library; this worker's own start and stop too
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s "
                                                      "%(message)s")
    log.setLevel(logging.INFO)
    install()
    os.nice(NICENESS)
    migrate()
    enforce("log worker")
    stopping = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    relay = None
    if get_settings().profile == "production":
        relay = threading.Thread(target=asyncio.run, args=(event_relay.relay(stopping),),
                                 name="event-relay", daemon=True)
        relay.start()
    log.info("log worker: following Rasa's event stream")
    follow(stopping)
    if relay is not None:
        relay.join(timeout=5)
    log.info("log worker: stopped")
