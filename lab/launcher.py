"""Run a self-training iteration in a background process that the app can watch and cancel.

A job is one command (normally `python -m lab iterate ...`, see `iterate_command`) started in its
own session, so that it and every process it spawns form one process group; stdout and stderr go
to a log file under the run directory.

One job at a time per lab directory. The lock is `<lab_dir>/iterate.lock`, held with `flock` on an
open file description that the job process inherits: the lock lives exactly as long as the job (or
a child still holding it) and vanishes on any exit, `kill -9` included, so there is no stale lock
and no pid reuse to get wrong. A second launch, from this app or another process, is refused
while it is held. The lock file also carries the job's description (pid, command, log, start time)
for whoever wants to show or cancel it. `python -m lab run` and `iterate` typed in a shell take
the same lock (`job_lock`), so the app and a terminal never run two jobs on one store.

Progress is read back from the log: its last lines (tqdm's carriage-return redraws collapsed) and
the current stage's tqdm bar (percent and time left), none when the stage has not drawn one. Cancel
signals the process group: SIGINT, then SIGTERM, then SIGKILL, each after a grace period.

Not covered here: what an iteration does (loop.py) or how the app shows a job (app.py).
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lab.config import LabConfig, make_config, parse_assignments, repo_root
from lab.records import RunRow
from lab.stored_config import flatten_config, upgrade_stored_config

LOCK_NAME = "iterate.lock"
ESTIMATE_FILE = "estimate.json"
"""In a run's directory: the running job's time estimate per stage (written by the loop with
estimate.save_estimate), for whoever follows the job (the app's job view)."""
INHERITED_LOCK_ENV = "RR_JOB_LOCK"
"""Set by the launcher for its job: the path of the lock the job already holds by inheritance."""
TAIL_BYTES = 64 * 1024
TQDM_PROGRESS = re.compile(r"^(?P<label>.*?):?\s*(?P<percent>\d{1,3})%\|")
TQDM_REMAINING = re.compile(r"\[[0-9:]+<(?P<remaining>[0-9:]+)")
STAGE_START = re.compile(r"^\[iteration \d+\] \S+ \.\.\.")
"""The console's line when a stage starts (console.JobConsole.stage)."""


class LaunchRefused(RuntimeError):
    """A job is already running on this lab directory."""


@dataclass
class JobStatus:
    state: str
    """'idle' (never launched here), 'running', 'succeeded', 'failed', 'cancelled', or 'finished'
    (started by another process, so its exit status is unknown here: read the log)."""
    command: list[str] = field(default_factory=list)
    log_path: str | None = None
    pid: int | None = None
    started_at: float | None = None
    returncode: int | None = None
    progress_label: str = ""
    progress_percent: int | None = None
    progress_remaining: str = ""
    """The progress bar's estimate of the time its work has left ('01:23'), '' when unknown."""
    log_tail: str = ""

    @property
    def running(self) -> bool:
        return self.state == "running"


def iterate_command(lab_dir: str | Path, run_name: str, preset: str, assignments: Sequence[str] = (),
                    iterations: int = 1) -> list[str]:
    """`python -m lab iterate` for one more iteration of `run_name`."""
    command = [sys.executable, "-m", "lab", "iterate", "--lab-dir", str(lab_dir), "--run", run_name,
               "--preset", preset, "--iterations", str(iterations)]
    for assignment in assignments:
        command += ["--set", assignment]
    return command


def stored_run_config(stored_run: RunRow, assignments: list[str] | tuple[str, ...] = (), **location) -> LabConfig:
    """The config a stored run (Store.run's row) runs with, `assignments` (--set) on top."""
    return make_config(stored_run["preset"], **location, **parse_assignments(
        run_overrides(stored_run["config_json"], stored_run["preset"]) + list(assignments)))


def run_overrides(config_json: str, preset: str) -> list[str]:
    """The `--set` assignments that turn `preset` back into a run's stored config (so the next
    iteration runs with the same settings). Paths and names set by the command itself are skipped."""
    def flat(config: dict) -> dict:  # JSON gives lists where to_dict gives tuples
        return {name: tuple(v) if isinstance(v, list) else v for name, v in flatten_config(config).items()}

    stored = flat(upgrade_stored_config(json.loads(config_json)) if config_json.strip() else {})
    default = flat(make_config(preset).to_dict())
    skipped = {"preset", "lab_dir", "run_name"}
    return [f"{name}={_format_value(value)}" for name, value in sorted(stored.items())
            if name not in skipped and name in default and value != default[name]]


def _format_value(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def read_log_tail(path: str | Path | None, lines: int = 40) -> tuple[str, str, int | None]:
    """(last `lines` lines, last progress label, last progress percent) of a log file."""
    tail = _read_tail(path, lines)
    return tail.text, tail.label, tail.percent


@dataclass(frozen=True)
class _Tail:
    text: str = ""
    label: str = ""
    percent: int | None = None
    remaining: str = ""
    """tqdm's estimate of the time left ('01:23'), '' when it has none."""


def _read_tail(path: str | Path | None, lines: int) -> _Tail:
    """The log's last lines, and its last progress bar unless a stage started after it (its bar would
    be an earlier stage's)."""
    if not path or not Path(path).exists():
        return _Tail()
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - TAIL_BYTES))
        text = handle.read().decode("utf-8", "replace")
    shown = [segment for line in text.split("\n") if (segment := line.rstrip("\r").rsplit("\r", 1)[-1].rstrip())]
    for line in reversed(shown):
        if STAGE_START.match(line):
            break
        match = TQDM_PROGRESS.match(line)
        if match:
            remaining = TQDM_REMAINING.search(line)
            return _Tail("\n".join(shown[-lines:]), match["label"].strip(), min(100, int(match["percent"])),
                         remaining["remaining"] if remaining else "")
    return _Tail("\n".join(shown[-lines:]))


def _acquire(lock_path: Path) -> int:
    """An fd holding the lab directory's job lock, or LaunchRefused naming the job that holds it."""
    lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        running = _read_description(lock_path) or {}
        raise LaunchRefused(
            f"a job is already running on {lock_path.parent} (pid {running.get('pid', '?')}: "
            f"{shlex.join(running.get('command') or ['?'])}); wait for it or cancel it first") from None
    return lock_fd


def _describe(lock_fd: int, description: dict) -> None:
    os.ftruncate(lock_fd, 0)
    os.pwrite(lock_fd, json.dumps(description).encode(), 0)


def _read_description(lock_path: Path) -> dict | None:
    try:
        return json.loads(lock_path.read_text())
    except (OSError, ValueError):
        return None


@contextmanager
def job_lock(lab_dir: str | Path, command: list[str]):
    """Hold the lab directory's job lock while a command-line job runs (LaunchRefused if another
    job holds it). A job the launcher started already holds it, by inheritance."""
    lab_dir = Path(lab_dir)
    lock_path = (lab_dir / LOCK_NAME).resolve()
    if os.environ.get(INHERITED_LOCK_ENV) == str(lock_path):
        yield
        return
    lab_dir.mkdir(parents=True, exist_ok=True)
    lock_fd = _acquire(lock_path)
    try:
        _describe(lock_fd, {"pid": os.getpid(), "command": command, "log_path": None, "started_at": time.time()})
        yield
    finally:
        os.close(lock_fd)


class Launcher:
    """Start, watch and cancel the one background job of a lab directory. Thread-safe."""

    def __init__(self, lab_dir: str | Path):
        self.lab_dir = Path(lab_dir)
        self.lock_path = self.lab_dir / LOCK_NAME
        self._mutex = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._last: dict | None = None
        self._cancelled = False

    def _lock_held(self) -> bool:
        if not self.lock_path.exists():
            return False
        with open(self.lock_path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False

    def start(self, command: list[str], log_path: str | Path, cwd: str | Path | None = None) -> JobStatus:
        """Spawn `command` in the background, or raise LaunchRefused while a job holds the lock."""
        log_path = Path(log_path)
        with self._mutex:
            self.lab_dir.mkdir(parents=True, exist_ok=True)
            lock_fd = _acquire(self.lock_path)
            try:
                log_path.parent.mkdir(parents=True, exist_ok=True)
                with open(log_path, "ab") as log:
                    log.write(f"$ {shlex.join(command)}\n".encode())
                    log.flush()
                    process = subprocess.Popen(
                        command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                        cwd=str(cwd or repo_root()), start_new_session=True, pass_fds=(lock_fd,),
                        env={**os.environ, "PYTHONUNBUFFERED": "1", INHERITED_LOCK_ENV: str(self.lock_path.resolve())},
                    )
                description = {"pid": process.pid, "command": command, "log_path": str(log_path),
                               "started_at": time.time()}
                _describe(lock_fd, description)
            finally:
                os.close(lock_fd)
            self._process, self._last, self._cancelled = process, description, False
        return self.status()

    def status(self, tail_lines: int = 40) -> JobStatus:
        with self._mutex:
            held = self._lock_held()
            if self._process is not None and self._process.poll() is not None and not held:
                returncode = self._process.returncode
                state = "cancelled" if self._cancelled else ("succeeded" if returncode == 0 else "failed")
                self._last = {**(self._last or {}), "state": state, "returncode": returncode}
                self._process = None
            if held:
                description = _read_description(self.lock_path) or {}
                if self._last is None or description.get("pid") != self._last.get("pid"):
                    self._last = description
                self._last = {**self._last, "state": "running", "returncode": None}
            elif self._last is not None and self._last.get("state") == "running":
                self._last = {**self._last, "state": "cancelled" if self._cancelled else "finished"}
            if self._last is None:
                return JobStatus(state="idle")
            job = dict(self._last)
        tail = _read_tail(job.get("log_path"), tail_lines)
        return JobStatus(
            state=job["state"], command=job.get("command", []), log_path=job.get("log_path"), pid=job.get("pid"),
            started_at=job.get("started_at"), returncode=job.get("returncode"), progress_label=tail.label,
            progress_percent=tail.percent, progress_remaining=tail.remaining, log_tail=tail.text,
        )

    def cancel(self, grace_s: float = 5.0) -> JobStatus:
        """Stop the running job's whole process group: SIGINT (the CLI marks the stage failed and
        says how to resume), then SIGTERM, then SIGKILL, each after a grace period."""
        job = self.status(tail_lines=0)
        if not job.running or job.pid is None:
            return self.status()
        with self._mutex:
            self._cancelled = True
        for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            _signal_group(job.pid, sig)
            deadline = time.monotonic() + wait_s
            while self._lock_held() and time.monotonic() < deadline:
                self._reap()
                time.sleep(0.1)
            if not self._lock_held():
                break
        self._reap()
        return self.status()

    def _reap(self) -> None:
        with self._mutex:
            if self._process is not None:
                self._process.poll()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
