"""Candidates (sampled, greedy and reference answers), their executions and their reward-model scores.

A candidate is keyed by (run, iteration, problem, origin, model, sample_index), so re-adding one is a
no-op: sampling is idempotent. A candidate's first recorded execution is kept (its outputs capped at
OUTPUT_CAP_CHARS); scores are kept per reward-model version. `candidates()` reads them joined with
their problem's language and split, their execution, one version's score and their current label.

Not covered here: pairs (pairs.py), labels (labels.py), the app's short rows (app_queries.py).
"""
from __future__ import annotations

from typing import Any, Protocol

from lab.records import CandidateCountRow, CandidateRow, CandidateText, NewCandidate
from lab.store.core import StoreCore, now
from lab.store.schema import ORIGINS
from lab.text import clip

OUTPUT_CAP_CHARS = 16_000


class ExecutionOutcome(Protocol):
    """What the store keeps of an execution.ExecutionResult."""
    @property
    def status(self) -> str: ...
    @property
    def exit_code(self) -> int | None: ...
    @property
    def passed(self) -> bool: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def toolchain(self) -> str: ...


def cap_output(text: str) -> str:
    return clip(text, OUTPUT_CAP_CHARS, left_out="dropped")


class CandidateTables(StoreCore):
    def add_candidates(self, run_id: int, iteration: int, rows: list[NewCandidate]) -> list[int]:
        """Insert candidates; re-inserting the same (problem, origin, model, sample_index) is a no-op.
        Returns the ids in the order given."""
        ids = []
        with self.transaction() as db:
            for row in rows:
                origin = row.get("origin", "sample")
                if origin not in ORIGINS:
                    raise ValueError(f"candidate origin must be one of {ORIGINS}, got {origin!r}")
                key = (run_id, iteration, row["problem_id"], origin, row["model"], row["sample_index"])
                db.execute(
                    "INSERT OR IGNORE INTO candidates (run_id, iteration, problem_id, origin, model, sample_index, "
                    "completion, temperature, top_p, seed, mean_logprob, num_tokens, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*key, row["completion"], row.get("temperature"), row.get("top_p"), row.get("seed"),
                     row.get("mean_logprob"), row.get("num_tokens"), now()),
                )
                ids.append(int(db.execute(
                    "SELECT id FROM candidates WHERE run_id = ? AND iteration = ? AND problem_id = ? AND origin = ? "
                    "AND model = ? AND sample_index = ?", key,
                ).fetchone()[0]))
        return ids

    def candidates(
        self,
        run_id: int,
        *,
        iteration: int | None = None,
        problem_id: str | None = None,
        origin: str | None = None,
        model: str | None = None,
        reward_model: str | None = None,
        role: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[CandidateRow]:
        """Candidates joined with their problem's language/split, execution, score under
        `reward_model` (column `reward`), current label and visible-example verdict."""
        where: list[str] = ["c.run_id = ?"]
        params: list[Any] = [run_id]
        filters: tuple[tuple[str, Any], ...] = (("c.iteration", iteration), ("c.problem_id", problem_id),
                                                ("c.origin", origin), ("c.model", model))
        for column, value in filters:
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if role is not None:
            where.append("EXISTS (SELECT 1 FROM run_problems r "
                         "WHERE r.run_id = c.run_id AND r.problem_id = c.problem_id AND r.role = ?)")
            params.append(role)
        sql = (
            "SELECT c.*, p.language, p.split, e.status, e.exit_code, e.passed, e.stdout, e.stderr, e.duration_s, "
            "s.score AS reward, "
            "cl.label, cl.note AS label_note, cl.version AS label_version, cl.author AS label_author, "
            "cl.created_at AS label_at, v.examples AS visible_examples, v.passed AS examples_passed "
            "FROM candidates c JOIN problems p ON p.id = c.problem_id "
            "LEFT JOIN executions e ON e.candidate_id = c.id "
            "LEFT JOIN example_verdicts v ON v.candidate_id = c.id "
            "LEFT JOIN current_labels cl ON cl.candidate_id = c.id "
            "LEFT JOIN scores s ON s.candidate_id = c.id AND s.reward_model = ? "
            f"WHERE {' AND '.join(where)} ORDER BY c.problem_id, c.origin, c.model, c.sample_index, c.id"
        )
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        return self._query(sql, [reward_model, *params])

    def candidate_counts_by_problem(self, run_id: int, *, iteration: int, origin: str, model: str) -> dict[str, int]:
        """problem_id -> how many candidates of this origin and model the iteration has."""
        rows = self._query(
            "SELECT problem_id, COUNT(*) AS n FROM candidates WHERE run_id = ? AND iteration = ? AND origin = ? "
            "AND model = ? GROUP BY problem_id", (run_id, iteration, origin, model))
        return {r["problem_id"]: r["n"] for r in rows}

    def candidate_counts(self, run_id: int) -> list[CandidateCountRow]:
        """Per (iteration, role): candidates, executed and passing."""
        return self._query(
            "SELECT c.iteration, rp.role, COUNT(*) AS candidates, COUNT(e.candidate_id) AS executed, "
            "COALESCE(SUM(e.passed), 0) AS passing FROM candidates c "
            "JOIN run_problems rp ON rp.run_id = c.run_id AND rp.problem_id = c.problem_id "
            "LEFT JOIN executions e ON e.candidate_id = c.id WHERE c.run_id = ? "
            "GROUP BY c.iteration, rp.role ORDER BY c.iteration, rp.role", (run_id,))

    def unexecuted_candidates(self, run_id: int, iteration: int | None = None) -> list[CandidateText]:
        where = "c.run_id = ?" + (" AND c.iteration = ?" if iteration is not None else "")
        params = (run_id,) if iteration is None else (run_id, iteration)
        return self._query(
            "SELECT c.id, c.problem_id, c.completion FROM candidates c LEFT JOIN executions e ON e.candidate_id = c.id "
            f"WHERE {where} AND e.candidate_id IS NULL ORDER BY c.id",
            params,
        )

    def add_executions(self, results: list[tuple[int, ExecutionOutcome]]) -> None:
        """(candidate_id, ExecutionResult) pairs; a candidate's first recorded execution is kept."""
        with self.transaction() as db:
            for candidate_id, result in results:
                db.execute(
                    "INSERT OR IGNORE INTO executions (candidate_id, status, exit_code, passed, stdout, stderr, "
                    "duration_s, toolchain, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (candidate_id, result.status, result.exit_code, int(result.passed), cap_output(result.stdout),
                     cap_output(result.stderr), result.duration_s, result.toolchain, now()),
                )

    def add_scores(self, reward_model: str, scores: list[tuple[int, float]]) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO scores (candidate_id, reward_model, score, created_at) VALUES (?, ?, ?, ?)",
                [(candidate_id, reward_model, float(score), now()) for candidate_id, score in scores],
            )

    def scored_candidate_ids(self, reward_model: str) -> set[int]:
        return {r["candidate_id"] for r in self._query("SELECT candidate_id FROM scores WHERE reward_model = ?",
                                                      (reward_model,))}
