"""The reads behind an export of a run's curated dataset: its labels with the candidate and problem
each is about. Nothing here writes.

Not covered here: which pairs an export holds and writing its files (lab/curation.py), the pairs
themselves (pairs.py).
"""
from __future__ import annotations

from typing import Any

from lab.store.pairs import PairTables


class Exports(PairTables):
    def labels_for_export(self, run_id: int, *, history: bool) -> list[dict[str, Any]]:
        """The run's labels with their candidate (code, verdict) and problem (prompt): every label row in
        order when `history` (clears and undos included), else each candidate's current label, cleared
        ones left out."""
        source, kept = ("labels", "") if history else ("current_labels", "AND l.label IS NOT NULL")
        return self._query(
            "SELECT l.id AS label_id, l.label, l.note, l.author, l.created_at, l.version, l.action, l.undoes, "
            "c.id AS candidate_id, c.iteration, c.problem_id, c.origin, c.model, c.completion, p.language, p.prompt, "
            f"e.passed, e.status FROM {source} l JOIN candidates c ON c.id = l.candidate_id "
            "JOIN problems p ON p.id = c.problem_id LEFT JOIN executions e ON e.candidate_id = c.id "
            f"WHERE c.run_id = ? {kept} ORDER BY l.id",
            (run_id,),
        )
