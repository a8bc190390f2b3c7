"""What the terminal shows while `make run` sets up and runs Sportello: one short line per step,
a progress bar while the model trains, then the banner. Everything the libraries print (Rasa's
warnings, TensorFlow, Sanic's access lines) goes to the processes' log files under `var/logs/`;
the lines that report an error are repeated here, so that nothing wrong goes unseen."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from bot.settings import get_settings

ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|^Traceback ")
_COMPONENT = re.compile(r"Starting to train component '([^']+)'")
_EPOCHS = re.compile(r"Epochs:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)")
POLL_SECONDS = 0.5  # how often a log file is looked at for the terminal (display only)


def log_dir() -> Path:
    """`var/logs/`: one file per process of `make run`, and the training's."""
    path = get_settings().var_dir / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def step(text: str) -> None:
    print(f"• {text}", flush=True)


def training_status(log_text: str) -> str | None:
    """The training's state from its log: the component being trained and, while a neural
    component trains, its epochs as a bar."""
    components = _COMPONENT.findall(log_text)
    if not components:
        return None
    name = components[-1]
    last_start = log_text.rfind(f"Starting to train component '{name}'")
    epochs = _EPOCHS.findall(log_text[last_start:])
    if not epochs:
        return f"training {name}"
    done, total = (int(n) for n in epochs[-1])
    filled = round(20 * done / max(total, 1))
    return f"training {name} [{'#' * filled}{'.' * (20 - filled)}] {done}/{total} epochs"


def run_with_progress(command: list[str], log: Path, cwd: Path, env: dict[str, str]) -> None:
    """Run the training `command` with its output in `log`, showing its progress; on failure
    show the end of the log and stop."""
    tty = sys.stdout.isatty()
    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    shown = None
    while proc.poll() is None:
        status = training_status(log.read_text(errors="replace"))
        if status and status != shown and (tty or _milestone(status) != _milestone(shown)):
            print(f"\r  {status}".ljust(78), end="" if tty else "\n", flush=True)
            shown = status
        time.sleep(POLL_SECONDS)
    if tty and shown:
        print(flush=True)
    if proc.returncode != 0:
        print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
        raise SystemExit(f"training failed (exit code {proc.returncode}); the whole output is "
                         f"in {log}")


def _milestone(status: str | None) -> tuple[str, int]:
    """What a log file (not a terminal) is shown of the training: each component, and every
    tenth epoch."""
    if not status:
        return ("", 0)
    epochs = re.search(r"\] (\d+)/", status)
    return (status.split(" [")[0], int(epochs.group(1)) // 10 if epochs else 0)


class ErrorEcho(threading.Thread):
    """Repeats on stderr the error lines the processes write to their log files."""

    def __init__(self, logs: dict[str, Path]) -> None:
        super().__init__(daemon=True, name="error-echo")
        self.logs = logs
        self.offsets = {name: 0 for name in logs}
        self.stopping = threading.Event()

    def scan(self) -> list[str]:
        """The error lines written since the last scan, as `[process] line`."""
        found = []
        for name, path in self.logs.items():
            try:
                with open(path, "rb") as f:
                    f.seek(self.offsets[name])
                    data = f.read()
            except OSError:
                continue
            complete = data.rfind(b"\n") + 1  # a line still being written waits for the next scan
            self.offsets[name] += complete
            for line in data[:complete].decode(errors="replace").splitlines():
                if ERROR_LINE.search(line):
                    found.append(f"[{name}] {line}")
        return found

    def run(self) -> None:
        while not self.stopping.wait(POLL_SECONDS):
            for line in self.scan():
                print(line, file=sys.stderr, flush=True)

    def stop(self) -> None:
        self.stopping.set()
