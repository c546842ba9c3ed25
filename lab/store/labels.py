"""Manual labels of candidates, append-only, safe for a team.

A candidate's current label is its newest label row (the `current_labels` view); clearing appends a
row whose label is None. History is never rewritten: every change keeps its author and time.

Versions. Each row carries its candidate's label version (1 for the first row, +1 for each next
one). A writer that passes `seen_version`, the version its author was shown (0: none yet), is
refused with LabelConflict when the candidate changed since, naming who changed it, to what and
when; without it the write simply comes last (the loop's scripts, tests). Writing the label, note
and author a candidate already has writes nothing.

Actions and undo. The rows one call writes (one label, or a bulk label over many candidates) form
one action. An author's undo takes that author's newest action in the run that is not undone yet
(a stack per author, across problems) and appends, for each of its candidates, the label that
candidate had before it; the rows record which action they undo. An undo over a label that another
author changed since is refused with LabelConflict unless forced.

Not covered here: what a label does to pairs (mining.py), the app's labelling controls (lab/app/).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping

from lab.records import AnnotatorLabelRow, LabelRow
from lab.store.core import StoreCore, StoreError, now
from lab.store.schema import LABELS


class LabelConflict(StoreError):
    """A label write refused: the candidate's label changed after the version its author saw."""

    def __init__(self, candidate_id: int, seen_version: int, current: LabelRow):
        self.candidate_id, self.seen_version, self.current = candidate_id, seen_version, current
        super().__init__(
            f"candidate {candidate_id} was changed to {current['label'] or 'no label'} by {current['author']} at "
            f"{current['created_at']} (label version {current['version']}, after the version {seen_version} its "
            "author saw): keep that, or write again over it")


Write = tuple[int, str | None, str]
"""(candidate id, label or None, note)."""


class LabelTables(StoreCore):
    def add_label(self, candidate_id: int, label: str | None, author: str, note: str = "", *,
                  seen_version: int | None = None) -> LabelRow:
        """Append a label (None clears) as one action; LabelConflict when `seen_version` is given and the
        candidate's label version is another. Returns the candidate's newest row after the write."""
        return self.add_labels({candidate_id: seen_version}, label, author, note)[0]

    def add_labels(self, seen_versions: Mapping[int, int | None], label: str | None, author: str,
                   note: str = "") -> list[LabelRow]:
        """The same label on several candidates as one action (undone together), all or nothing:
        `seen_versions` maps each candidate to the version its author saw (None: not checked)."""
        _check(label, author)
        with self.transaction() as db:
            return self._append(db, [(cid, label, note) for cid in seen_versions], author, seen_versions)

    def undo_last(self, run_id: int, author: str, *, force: bool = False) -> list[LabelRow]:
        """Undo `author`'s newest action in the run not undone yet; [] when there is none. LabelConflict
        when another author changed one of its candidates since, unless `force`."""
        _check(None, author)
        with self.transaction() as db:
            rows = self.last_action(run_id, author)
            if not rows:
                return []
            restore: list[Write] = []
            for row in rows:
                newest = self._newest(db, row["candidate_id"])
                assert newest is not None, "a candidate with an action has label rows"
                later_by_others = db.execute(
                    "SELECT 1 FROM labels WHERE candidate_id = ? AND version > ? AND author != ? LIMIT 1",
                    (row["candidate_id"], row["version"], author)).fetchone()
                if later_by_others and not force:
                    raise LabelConflict(row["candidate_id"], row["version"], newest)
                before = db.execute("SELECT label, note FROM labels WHERE candidate_id = ? AND version = ?",
                                    (row["candidate_id"], row["version"] - 1)).fetchone()
                restore.append((row["candidate_id"], before["label"] if before else None,
                                before["note"] if before else ""))
            return self._append(db, restore, author, None, undoes=rows[0]["action"])

    def last_action(self, run_id: int, author: str) -> list[LabelRow]:
        """The rows of `author`'s newest action in the run that is not undone yet (what undo would undo)."""
        found = self.db.execute(
            "SELECT MAX(l.action) FROM labels l JOIN candidates c ON c.id = l.candidate_id "
            "WHERE c.run_id = ? AND l.author = ? AND l.undoes IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM labels u WHERE u.undoes = l.action)", (run_id, author)).fetchone()
        if found[0] is None:
            return []
        return self._query("SELECT * FROM labels WHERE action = ? ORDER BY id", (found[0],))

    def label_history(self, candidate_id: int) -> list[LabelRow]:
        return self._query("SELECT * FROM labels WHERE candidate_id = ? ORDER BY version", (candidate_id,))

    def label_histories(self, candidate_ids: Iterable[int]) -> dict[int, list[LabelRow]]:
        """candidate_id -> its label rows, oldest first (candidates without labels left out)."""
        ids = list(candidate_ids)
        histories: dict[int, list[LabelRow]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows: list[LabelRow] = self._query(
                f"SELECT * FROM labels WHERE candidate_id IN ({','.join('?' * len(chunk))}) "
                "ORDER BY candidate_id, version", chunk)
            for row in rows:
                histories.setdefault(row["candidate_id"], []).append(row)
        return histories

    def current_labels(self, run_id: int) -> dict[int, LabelRow]:
        """candidate_id -> newest label row, for candidates whose current label is not cleared."""
        rows: list[LabelRow] = self._query(
            "SELECT l.* FROM current_labels l JOIN candidates c ON c.id = l.candidate_id WHERE c.run_id = ?",
            (run_id,),
        )
        return {r["candidate_id"]: r for r in rows if r["label"] is not None}

    def annotator_labels(self, run_id: int) -> list[AnnotatorLabelRow]:
        """Each author's own label of each candidate they labelled: their newest row that is neither an
        undo nor undone (None when they cleared it), for agreement between annotators."""
        return self._query(
            """
            WITH own AS (
                SELECT l.candidate_id, l.author, l.label, c.problem_id,
                       ROW_NUMBER() OVER (PARTITION BY l.candidate_id, l.author ORDER BY l.version DESC) AS newest
                FROM labels l JOIN candidates c ON c.id = l.candidate_id
                WHERE c.run_id = ? AND l.undoes IS NULL
                  AND NOT EXISTS (SELECT 1 FROM labels u WHERE u.undoes = l.action)
            )
            SELECT candidate_id, problem_id, author, label FROM own WHERE newest = 1 ORDER BY candidate_id, author
            """,
            (run_id,),
        )

    def newest_label_id(self, candidate_ids: Iterable[int]) -> int:
        """The id of the newest label row of these candidates (0 when none): it changes with every label
        written on any of them."""
        ids = list(candidate_ids)
        if not ids:
            return 0
        return int(self.db.execute(f"SELECT COALESCE(MAX(id), 0) FROM labels WHERE candidate_id IN "
                                   f"({','.join('?' * len(ids))})", ids).fetchone()[0])

    # -- writing

    def _newest(self, db: sqlite3.Connection, candidate_id: int) -> LabelRow | None:
        row = db.execute("SELECT * FROM labels WHERE candidate_id = ? ORDER BY version DESC LIMIT 1",
                         (candidate_id,)).fetchone()
        return dict(row) if row is not None else None  # type: ignore[return-value]

    def _append(self, db: sqlite3.Connection, writes: list[Write], author: str,
                seen_versions: Mapping[int, int | None] | None, *, undoes: int | None = None) -> list[LabelRow]:
        """Append `writes` as one action inside the caller's transaction (conflicts checked first, so a
        refused action writes nothing). A plain write equal to the current row is skipped."""
        newest = {}
        for candidate_id, _, _ in writes:
            if db.execute("SELECT 1 FROM candidates WHERE id = ?", (candidate_id,)).fetchone() is None:
                raise StoreError(f"no candidate {candidate_id}")
            current = newest[candidate_id] = self._newest(db, candidate_id)
            version = current["version"] if current else 0
            seen = (seen_versions or {}).get(candidate_id)
            if seen is not None and seen != version:
                assert current is not None, "a version above 0 has a row"
                raise LabelConflict(candidate_id, seen, current)
        action = db.execute("SELECT COALESCE(MAX(action), 0) + 1 FROM labels").fetchone()[0]
        rows: list[LabelRow] = []
        for candidate_id, label, note in writes:
            current = newest[candidate_id]
            if undoes is None and current is not None and \
                    (current["label"], current["note"], current["author"]) == (label, note, author):
                rows.append(current)
                continue
            version = (current["version"] if current else 0) + 1
            cursor = db.execute(
                "INSERT INTO labels (candidate_id, label, note, author, created_at, version, action, undoes) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (candidate_id, label, note, author, now(), version, action, undoes))
            written = db.execute("SELECT * FROM labels WHERE id = ?", (cursor.lastrowid,)).fetchone()
            rows.append(dict(written))  # type: ignore[arg-type]
        return rows


def _check(label: str | None, author: str) -> None:
    if label is not None and label not in LABELS:
        raise ValueError(f"label must be one of {LABELS} or None, got {label!r}")
    if not author.strip():
        raise ValueError("a label needs an author")
