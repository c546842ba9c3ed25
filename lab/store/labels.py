"""Manual labels of candidates, append-only.

A candidate's current label is its newest label row (the `current_labels` view); clearing appends a
row whose label is None, and undo appends the label before the newest one back, so history is never
rewritten and every change keeps its author and time.

Not covered here: what a label does to pairs (mining.py), the app's labelling controls (app.py).
"""
from __future__ import annotations

from lab.records import LabelRow
from lab.store.core import StoreCore, StoreError, now
from lab.store.schema import LABELS


class LabelTables(StoreCore):
    def add_label(self, candidate_id: int, label: str | None, author: str, note: str = "") -> int:
        """Append a label (None clears). History is never rewritten. Returns the new row's id."""
        if label is not None and label not in LABELS:
            raise ValueError(f"label must be one of {LABELS} or None, got {label!r}")
        if not author.strip():
            raise ValueError("a label needs an author")
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM candidates WHERE id = ?", (candidate_id,)).fetchone() is None:
                raise StoreError(f"no candidate {candidate_id}")
            cursor = db.execute(
                "INSERT INTO labels (candidate_id, label, note, author, created_at) VALUES (?, ?, ?, ?, ?)",
                (candidate_id, label, note, author, now()),
            )
            label_id = cursor.lastrowid
            assert label_id is not None, "an INSERT sets lastrowid"
            return label_id

    def undo_label(self, candidate_id: int, author: str) -> str | None:
        """Restore the label before the newest one, by appending it. Returns the restored label."""
        with self.transaction():
            history = self.label_history(candidate_id)
            if not history:
                raise StoreError(f"candidate {candidate_id} has no label to undo")
            label, note = (history[-2]["label"], history[-2]["note"]) if len(history) > 1 else (None, "")
            self.add_label(candidate_id, label, author, note)
            return label

    def label_history(self, candidate_id: int) -> list[LabelRow]:
        return self._query("SELECT * FROM labels WHERE candidate_id = ? ORDER BY id", (candidate_id,))

    def current_labels(self, run_id: int) -> dict[int, LabelRow]:
        """candidate_id -> newest label row, for candidates whose current label is not cleared."""
        rows: list[LabelRow] = self._query(
            "SELECT l.* FROM current_labels l JOIN candidates c ON c.id = l.candidate_id WHERE c.run_id = ?",
            (run_id,),
        )
        return {r["candidate_id"]: r for r in rows if r["label"] is not None}
