"""Problems and the runs they belong to, with the licence guard.

A problem id is stored once, with content that never changes (results recorded for it would change
meaning). A run links problems in a role: 'train', 'validation' or 'eval'; an evaluation-only
problem (a benchmark licensed for evaluation) can only be an 'eval' problem.

Not covered here: loading problems from their datasets (lab/problems.py).
"""
from __future__ import annotations

import json
import sqlite3

from lab.problems import LicenceError, Problem
from lab.store.core import StoreCore, StoreError


class ProblemTables(StoreCore):
    def add_problems(self, problems: list[Problem], run_id: int | None = None, role: str | None = None) -> None:
        """Insert problems (an id already stored must have identical content) and link them to a run."""
        if role is not None and role != "eval":
            evaluation_only = [p.id for p in problems if not p.training_allowed]
            if evaluation_only:
                raise LicenceError(f"{evaluation_only[0]} is evaluation-only and cannot be a {role!r} problem")
        with self.transaction() as db:
            for problem in problems:
                values = _problem_values(problem)
                stored = db.execute("SELECT * FROM problems WHERE id = ?", (problem.id,)).fetchone()
                if stored is None:
                    db.execute(f"INSERT INTO problems VALUES ({', '.join('?' * len(values))})", values)
                elif tuple(stored) != values:
                    raise StoreError(
                        f"problem {problem.id!r} is already stored with different content: "
                        "results recorded for it would change meaning; use another lab directory or id"
                    )
                if run_id is not None:
                    db.execute(
                        "INSERT OR IGNORE INTO run_problems (run_id, problem_id, role) VALUES (?, ?, ?)",
                        (run_id, problem.id, role),
                    )

    def problem(self, problem_id: str) -> Problem:
        row = self.db.execute("SELECT * FROM problems WHERE id = ?", (problem_id,)).fetchone()
        if row is None:
            raise StoreError(f"no problem {problem_id!r} in the store")
        return _problem_from_row(row)

    def run_problems(self, run_id: int, role: str) -> list[Problem]:
        rows = self.db.execute(
            "SELECT p.* FROM problems p JOIN run_problems r ON r.problem_id = p.id "
            "WHERE r.run_id = ? AND r.role = ? ORDER BY p.id",
            (run_id, role),
        )
        return [_problem_from_row(row) for row in rows]


def _problem_values(problem: Problem) -> tuple:
    return (
        problem.id, problem.language, problem.prompt, problem.tests, json.dumps(list(problem.stop_tokens)),
        problem.entry_point, problem.source, problem.split, int(problem.training_allowed), problem.reference,
    )


def _problem_from_row(row: sqlite3.Row) -> Problem:
    return Problem(
        id=row["id"], language=row["language"], prompt=row["prompt"], tests=row["tests"],
        stop_tokens=tuple(json.loads(row["stop_tokens_json"])), entry_point=row["entry_point"],
        source=row["source"], split=row["split"], training_allowed=bool(row["training_allowed"]),
        reference=row["reference"],
    )
