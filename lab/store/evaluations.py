"""What an iteration measured: pass@1 per benchmark, language and method (evaluations), and the
measurements of rankers and reward models per eval set (measurements), each with its 95% interval.

Both are replaced when measured again. A measurement is keyed by (eval set, MeasureKey): what it
measures and of what (records.py); rows read back carry `name`, the key's label, for display.

Not covered here: computing them (measures.py, evaluation.py), showing them (reports.py, plots.py,
compare.py).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lab.records import EvaluationRow, MeasureKey, Measurement, MeasurementRow, PassAt1Row
from lab.store.core import StoreCore, now


def _real(value: float | None) -> float | None:
    return None if value is None else float(value)


class EvaluationTables(StoreCore):
    def add_evaluations(self, run_id: int, iteration: int, rows: list[PassAt1Row]) -> None:
        """pass@1 rows (measures.pass_at_1_rows) of `iteration`, per generator and method; replaces earlier ones."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO evaluations (run_id, iteration, benchmark, language, generator, method, "
                "pass_at_1, ci_low, ci_high, n_problems, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, iteration, r["benchmark"], r["language"], r.get("generator", ""), r["method"], r["pass_at_1"],
                  r.get("ci_low"), r.get("ci_high"), r["n_problems"], now()) for r in rows],
            )

    def evaluations(self, run_id: int) -> list[EvaluationRow]:
        return self._query(
            "SELECT * FROM evaluations WHERE run_id = ? ORDER BY iteration, benchmark, language, generator, method",
            (run_id,)
        )

    def add_measurements(self, run_id: int, iteration: int, eval_set: str,
                         values: Mapping[MeasureKey, Measurement]) -> None:
        """Measurements of `iteration` on `eval_set` (e.g. 'mbpp-validation'), such as
        MeasureKey('pair_accuracy', 'reranker') or MeasureKey('lambda'). Replaces earlier ones."""
        rows = [(run_id, iteration, eval_set, key.measure, key.subject, _real(m.value), m.count, _real(m.ci_low),
                 _real(m.ci_high), now()) for key, m in values.items()]
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO measurements (run_id, iteration, eval_set, measure, subject, value, count, "
                "ci_low, ci_high, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def measurements(self, run_id: int, eval_set: str | None = None) -> list[MeasurementRow]:
        where = "run_id = ?"
        params: list[Any] = [run_id]
        if eval_set is not None:
            where, params = where + " AND eval_set = ?", params + [eval_set]
        rows = self._query(
            f"SELECT * FROM measurements WHERE {where} ORDER BY iteration, eval_set, measure, subject", params)
        for row in rows:
            row["name"] = MeasureKey(row["measure"], row["subject"]).label
        return rows
