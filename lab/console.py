"""A quiet terminal for the main job: one line when a stage starts, one progress bar (with an ETA)
while it runs, one summary line when it ends; everything else goes to a log file.

    with JobConsole(config.run_dir / "log.txt", verbose=False) as console:
        console.say("this job will: ...")
        with console.stage(0, "sft", estimate_s=100) as stage:
            bar = console.progress(total=8, desc="sft steps")
            ...                                   # bar.update(1) per step
            stage.summary = "loss 1.9 -> 1.1"

While the console is open, third-party chatter goes to the log file: Python logging (the root
logger's handlers, and the console handlers libraries such as transformers install on their own
loggers), `warnings` (FutureWarnings, deprecation notices), and transformers' and datasets' own
progress bars (weight loading, `Dataset.map`), which are switched off. Inside a stage, sys.stdout
and sys.stderr also go to the log (stray prints, Trainer's per-step dicts, its tqdm bar). Everything
is restored when a stage ends and when the console closes, also on exceptions; a failing stage prints
one line saying so and re-raises, so the traceback still reaches the user (and the log gets it too).
`verbose=True` shows the chatter live as well (and leaves the libraries' progress bars on).

Not covered here: what the stages do (loop.py), the time estimate (estimate.py), and output written
by C extensions straight to file descriptors 1 and 2.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def format_duration(seconds: float) -> str:
    """12 s, 3.4 min, 1 h 05 min."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


class _Sink:
    """The log file, and the terminal too when verbose; safe to write from several threads."""

    def __init__(self, file: TextIO, echo: TextIO | None):
        self.file, self.echo = file, echo
        self.lock = threading.Lock()

    def write(self, text: str, *, echo: bool = True) -> int:
        with self.lock:
            if not self.file.closed:
                self.file.write(text)
            if echo and self.echo is not None:
                self.echo.write(text)
        return len(text)

    def flush(self) -> None:
        with self.lock:
            if not self.file.closed:
                self.file.flush()
            if self.echo is not None:
                self.echo.flush()


class _StageStream:
    """Stands in for sys.stdout / sys.stderr: to the log while a stage runs, else to the real stream.

    A library that keeps a reference to it (a logging handler created inside a stage binds to
    sys.stderr as it is then) therefore never writes to a closed log after the stage or the console."""

    def __init__(self, console: JobConsole, original: TextIO):
        self.console, self.original = console, original

    def _target(self):
        return self.console._sink if self.console._depth and self.console._sink else self.original

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name):  # encoding, fileno, ... of the real stream
        return getattr(self.original, name)


@dataclass
class Stage:
    """What the caller knows about a running stage: set `summary` for its closing line."""
    iteration: int
    name: str
    started: float
    summary: str = ""


class JobConsole:
    def __init__(self, log_path: str | Path, *, verbose: bool = False):
        """`log_path`: where the chatter goes (appended to; its folder is created)."""
        self.log_path = Path(log_path)
        self.verbose = verbose
        self._sink: _Sink | None = None
        self._depth = 0
        self._undo: list = []
        self._bars: list = []

    # -- opening and closing: logging, warnings and library progress bars go to the log

    def __enter__(self) -> JobConsole:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.out, self.err = sys.stdout, sys.stderr
        log_file = open(self.log_path, "a", encoding="utf-8", buffering=1)
        self._undo.append(log_file.close)
        self._sink = _Sink(log_file, self.err if self.verbose else None)
        self._sink.write(f"\n===== {datetime.now().isoformat(timespec='seconds')} {' '.join(sys.argv)}\n", echo=False)
        self._stdout, self._stderr = _StageStream(self, self.out), _StageStream(self, self.err)
        try:
            self._quiet_libraries()
            self._route_logging()
            self._route_warnings()
        except BaseException:
            self.close()
            raise
        hint = "" if self.verbose else " (--verbose shows it here as well)"
        self.say(f"full log: {self.log_path}{hint}")
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Undo every redirection, newest first, and close the log."""
        while self._undo:
            self._undo.pop()()
        self._sink = None

    def _quiet_libraries(self) -> None:
        """Import the libraries' logging modules now, so that their console handlers exist before
        logging is rerouted, and switch their progress bars off unless verbose."""
        for module in ("transformers.utils.logging", "datasets.utils.logging"):
            try:
                library = importlib.import_module(module)
            except ImportError:
                continue
            library.get_logger()  # transformers installs its stderr handler on the first call
            if not self.verbose and library.is_progress_bar_enabled():
                library.disable_progress_bar()
                self._undo.append(library.enable_progress_bar)

    def _route_logging(self) -> None:
        """The root logger writes to the log alone; a library's own console handler is taken off
        its logger when that logger propagates to the root (it would log everything twice), else
        pointed at the log."""
        root = logging.getLogger()
        handler = logging.StreamHandler(self._sink)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        saved = root.handlers[:]
        root.handlers[:] = [handler]
        self._undo.append(lambda: root.handlers.__setitem__(slice(None), saved))
        terminals = {id(stream) for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)}
        loggers = [logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)]
        for logger in loggers:
            for console_handler in logger.handlers[:]:
                if type(console_handler) is not logging.StreamHandler or id(console_handler.stream) not in terminals:
                    continue
                if logger.propagate:
                    logger.removeHandler(console_handler)
                    self._undo.append(lambda lg=logger, h=console_handler: lg.addHandler(h))
                else:
                    old = console_handler.setStream(self._sink)
                    self._undo.append(lambda h=console_handler, stream=old: h.setStream(stream))

    def _open_sink(self) -> _Sink:
        if self._sink is None:
            raise RuntimeError("the console is not open: use it as `with JobConsole(log_path) as console:`")
        return self._sink

    def _route_warnings(self) -> None:
        saved = warnings.showwarning

        def to_log(message, category, filename, lineno, file=None, line=None):
            self._open_sink().write(warnings.formatwarning(message, category, filename, lineno, line))

        warnings.showwarning = to_log
        self._undo.append(lambda: setattr(warnings, "showwarning", saved))

    # -- what the user sees

    def say(self, line: str) -> None:
        """One line for the user (and the log)."""
        print(line, file=self.out, flush=True)
        self._open_sink().write(line + "\n", echo=False)

    def progress(self, total: int | None, desc: str, unit: str = "it"):
        """The stage's progress bar (tqdm, with an ETA), on the terminal whatever a stage redirects;
        the stage that opened it closes it at the latest. Position 0: a trainer's own bar, open in the log
        at the same time, must not push this one down a line (tqdm would move the cursor for it)."""
        from tqdm import tqdm
        bar = tqdm(total=total, desc=desc, unit=unit, file=self.out, leave=False, dynamic_ncols=True, position=0)
        self._bars.append(bar)
        return bar

    @contextlib.contextmanager
    def stage(self, iteration: int, name: str, estimate_s: float | None = None) -> Iterator[Stage]:
        """Announce the stage (with its estimated time, when given), send stdout/stderr to the log
        while it runs, then print its summary, or that it failed and re-raise. Stages may nest;
        each restores the streams it replaced."""
        label = f"[iteration {iteration}] {name}"
        estimate = f"estimated ~{format_duration(estimate_s)}" if estimate_s else ""
        self.say(f"{label} ..." + (f" ({estimate})" if estimate else ""))
        stage = Stage(iteration, name, time.perf_counter())
        saved, bars_before = (sys.stdout, sys.stderr), len(self._bars)
        sys.stdout, sys.stderr = self._stdout, self._stderr
        self._depth += 1
        try:
            yield stage
        except BaseException as error:
            self._open_sink().write(traceback.format_exc(), echo=False)  # the user gets it when it propagates
            first_line = next(iter(str(error).splitlines()), "")[:200]
            reason = ("interrupted" if isinstance(error, KeyboardInterrupt)
                      else f"FAILED: {type(error).__name__}: {first_line}")
            took = format_duration(time.perf_counter() - stage.started)
            ending = f"{reason} (after {took}; details in {self.log_path})"
            raise
        else:
            took = f"done in {format_duration(time.perf_counter() - stage.started)}"
            took += f", {estimate}" if estimate else ""
            ending = took + (f": {stage.summary}" if stage.summary else "")
        finally:
            for bar in self._bars[bars_before:]:
                bar.close()
            del self._bars[bars_before:]
            self._depth -= 1
            sys.stdout, sys.stderr = saved
            self._open_sink().flush()
            self.say(f"{label} {ending}")
