"""Visible-example verdicts: whether each candidate passes the examples its prompt shows (lab/examples.py),
kept apart from its execution against the hidden tests (candidates.py).

A candidate's first recorded verdict is kept, like an execution, so checking is resumable: only the
candidates without one are checked (`unchecked_candidates`). A verdict records how many examples were
checked (0 when the prompt shows none, then `passed` is NULL) and the run's status.

Not covered here: building or running the examples' program (examples.py, stages.py), ranking with the
verdicts (measures.py); `Store.candidates` joins them in as visible_examples and examples_passed.
"""
from __future__ import annotations

from lab.records import CandidateText
from lab.store.core import StoreCore, now


class ExampleTables(StoreCore):
    def unchecked_candidates(self, run_id: int, iteration: int | None = None) -> list[CandidateText]:
        """The run's candidates (of one iteration, if given) without a visible-example verdict."""
        where = "c.run_id = ?" + (" AND c.iteration = ?" if iteration is not None else "")
        params = (run_id,) if iteration is None else (run_id, iteration)
        return self._query(
            "SELECT c.id, c.problem_id, c.completion FROM candidates c "
            "LEFT JOIN example_verdicts v ON v.candidate_id = c.id "
            f"WHERE {where} AND v.candidate_id IS NULL ORDER BY c.id", params)

    def add_example_verdicts(self, verdicts: list[tuple[int, int, bool | None, str]]) -> None:
        """(candidate_id, examples checked, passed (None when there were none), status) rows; a candidate's
        first recorded verdict is kept."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO example_verdicts (candidate_id, examples, passed, status, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [(candidate_id, examples, None if passed is None else int(passed), status, now())
                 for candidate_id, examples, passed, status in verdicts])
