"""Preference pairs (chosen, rejected) for training the reward model.

A pair joins two candidates of one problem, once per run; its kind says where it came from
('execution', 'hard_negative', 'manual'). A pair on an evaluation-only problem is refused: a
benchmark licensed for evaluation never becomes training data.

Not covered here: building pairs (mining.py), whether a later label contradicts one (mining.py).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lab.problems import LicenceError
from lab.records import PairCountRow, PairRow
from lab.store.core import StoreCore, StoreError, now
from lab.store.schema import PAIR_KINDS


class PairTables(StoreCore):
    def add_pairs(self, run_id: int, iteration: int, pairs: list[tuple[int, int, str]]) -> int:
        """(chosen_id, rejected_id, kind) triples for training the reward model. Refuses
        evaluation-only problems and pairs across problems. Returns how many were new."""
        added = 0
        with self.transaction() as db:
            for chosen_id, rejected_id, kind in pairs:
                if kind not in PAIR_KINDS:
                    raise ValueError(f"pair kind must be one of {PAIR_KINDS}, got {kind!r}")
                rows = {r["id"]: r for r in db.execute(
                    "SELECT c.id, c.problem_id, p.training_allowed FROM candidates c "
                    "JOIN problems p ON p.id = c.problem_id WHERE c.id IN (?, ?)", (chosen_id, rejected_id))}
                if len(rows) != 2 or chosen_id == rejected_id:
                    raise StoreError(f"pair ({chosen_id}, {rejected_id}): both candidates must exist and differ")
                problem_ids = {r["problem_id"] for r in rows.values()}
                if len(problem_ids) != 1:
                    raise StoreError(f"pair ({chosen_id}, {rejected_id}) mixes problems {sorted(problem_ids)}")
                if not rows[chosen_id]["training_allowed"]:
                    raise LicenceError(f"{rows[chosen_id]['problem_id']} is evaluation-only: "
                                       "it cannot become training pairs")
                cursor = db.execute(
                    "INSERT OR IGNORE INTO pairs "
                    "(run_id, iteration, problem_id, chosen_id, rejected_id, kind, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (run_id, iteration, problem_ids.pop(), chosen_id, rejected_id, kind, now()),
                )
                added += cursor.rowcount
        return added

    def pairs(self, run_id: int, *, up_to_iteration: int | None = None,
              problem_ids: Iterable[str] | None = None) -> list[PairRow]:
        """Pairs with the texts they compare: prompt, chosen, rejected (+ ids, kind, iteration)."""
        where: list[str] = ["pr.run_id = ?"]
        params: list[Any] = [run_id]
        if up_to_iteration is not None:
            where.append("pr.iteration <= ?")
            params.append(up_to_iteration)
        rows: list[PairRow] = self._query(
            "SELECT pr.*, p.prompt, p.language, ch.completion AS chosen, rj.completion AS rejected, "
            "ch.origin AS chosen_origin, rj.origin AS rejected_origin "
            "FROM pairs pr JOIN problems p ON p.id = pr.problem_id "
            "JOIN candidates ch ON ch.id = pr.chosen_id JOIN candidates rj ON rj.id = pr.rejected_id "
            f"WHERE {' AND '.join(where)} ORDER BY pr.id",
            params,
        )
        if problem_ids is not None:
            wanted = set(problem_ids)
            rows = [r for r in rows if r["problem_id"] in wanted]
        return rows

    def pair_counts(self, run_id: int) -> list[PairCountRow]:
        """Per (iteration, kind): how many pairs, and how many use a reference solution on either side."""
        return self._query(
            "SELECT pr.iteration, pr.kind, COUNT(*) AS pairs, "
            "SUM(ch.origin = 'reference' OR rj.origin = 'reference') AS with_reference FROM pairs pr "
            "JOIN candidates ch ON ch.id = pr.chosen_id JOIN candidates rj ON rj.id = pr.rejected_id "
            "WHERE pr.run_id = ? GROUP BY pr.iteration, pr.kind ORDER BY pr.iteration, pr.kind", (run_id,))
