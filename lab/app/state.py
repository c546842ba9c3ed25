"""What the app's handlers work on: the Lab (a lab directory, its store and its job launcher) shared by
every browser tab, and the View, the one state object of a tab's Review screen.

Opening a lab refuses what would silently go wrong: a lab directory that does not exist, or holds no
store, unless asked to create one (a mistyped --lab-dir would otherwise start an empty lab), and a
store SQLite cannot read (named, with what to do, by the store).

A View is immutable: a handler returns a new one (`dataclasses.replace`) with the components it
changes, and the page keeps it in a `gr.State`. It holds the run and iteration, the filters and the
page, the problem and candidate shown, and what the tab was shown: the problem ids of the page, the
candidate ids of the problem, each candidate's label version (what a label write says it saw) and
the newest label id of those candidates (to notice labels written on them elsewhere).

Not covered here: the handlers (review.py, labels.py, jobs.py, metrics.py, export.py), the layout
(layout.py).
"""
from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.config import UsageError
from lab.launcher import Launcher
from lab.records import RunRow
from lab.store import Store

STORE_FILE = "lab.sqlite"
DRAWN_KEPT = 64


@dataclass
class Lab:
    """A lab directory, its store and the job launcher; `drawn` keeps the plots last drawn, ready to send."""
    lab_dir: Path
    store: Store
    launcher: Launcher
    drawn: OrderedDict = field(default_factory=OrderedDict)

    @classmethod
    def open(cls, lab_dir: str | Path, *, create: bool = False) -> Lab:
        """The lab at `lab_dir`: UsageError when there is none there and `create` is false, StoreError
        (saying what to do) when its store is damaged."""
        lab_dir = Path(lab_dir)
        if not create and not (lab_dir / STORE_FILE).is_file():
            what = "no directory" if not lab_dir.is_dir() else f"no lab store ({STORE_FILE})"
            raise UsageError(f"{what} at {lab_dir}: check --lab-dir (the lab directory holds {STORE_FILE}), or pass "
                             "--create to start a new lab there")
        store = Store(lab_dir / STORE_FILE)
        store.check()
        return cls(lab_dir, store, Launcher(lab_dir))

    @property
    def reader(self) -> Store:
        return self.store.reader()

    def drawing(self, key: tuple, draw: Callable[[], Any], encode: Callable[[Any], Any]) -> Any:
        """`encode(draw())`, kept under `key` (what the plot shows: the run, and a fingerprint of its rows)
        so that the same plot is drawn once however often it is shown."""
        if key not in self.drawn:
            self.drawn[key] = encode(draw())
            while len(self.drawn) > DRAWN_KEPT:
                self.drawn.popitem(last=False)
        self.drawn.move_to_end(key)
        return self.drawn[key]

    def runs(self) -> dict[str, RunRow]:
        return {row["name"]: row for row in self.reader.runs()}

    def iterations(self, run_name: str | None) -> list[int]:
        run = self.runs().get(run_name or "")
        return self.reader.candidate_iterations(run["id"]) if run else []


@dataclass(frozen=True)
class View:
    """One tab's Review screen (see the module docstring)."""
    run: str | None = None
    iteration: int | None = None
    language: str = ""
    split: str = ""
    state: str = "all"
    search: str = ""
    offset: int = 0
    problem: str | None = None
    candidate: int | None = None
    compare_with: int | None = None
    page_ids: tuple[str, ...] = ()
    candidate_ids: tuple[int, ...] = ()
    seen: tuple[tuple[int, int], ...] = field(default=())
    """(candidate id, label version shown: 0 when never labelled)."""
    labels_seen: int = 0

    def with_(self, **changes) -> View:
        return dataclasses.replace(self, **changes)

    def seen_version(self, candidate_id: int) -> int | None:
        return dict(self.seen).get(candidate_id)

    def filters(self, queue: set[str] | None = None) -> dict:
        """The keyword filters of views.list_problems and its kin."""
        return {"language": self.language or None, "split": self.split or None, "state": self.state or "all",
                "search": self.search or "", "queue": queue}
