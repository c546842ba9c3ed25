"""Trained checkpoints and the step metrics of training stages.

A checkpoint is a generator or reward model trained in one iteration of a run (its version name,
directory and final metrics); a rerun of the stage replaces it. Besides an iteration's own model
(variant ''), a variant names a model trained beside it as a control (the study's 'equal_compute' and
'fresh' reward models, lab/controls.py). Metrics are (step, name, value) rows
logged while a stage trains; restarting the stage drops them (runs.py, `start_stage`).

Not covered here: training (sft.py, reward.py, ppo.py, rloo.py), where checkpoints live on disk (stages.py).
"""
from __future__ import annotations

import json
from typing import Any

from lab.records import CheckpointRow, MetricRow
from lab.store.core import StoreCore, now


class CheckpointTables(StoreCore):
    def add_checkpoint(self, run_id: int, iteration: int, kind: str, version: str, path: str, metrics: dict,
                       variant: str = "") -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO checkpoints (run_id, iteration, kind, variant, version, path, metrics_json, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, iteration, kind, variant, version, path, json.dumps(metrics), now()),
            )

    def checkpoint(self, run_id: int, kind: str, iteration: int | None = None,
                   variant: str = "") -> CheckpointRow | None:
        """The checkpoint of `kind` (and `variant`) at `iteration`, or the latest one when iteration is None."""
        sql = "SELECT * FROM checkpoints WHERE run_id = ? AND kind = ? AND variant = ?"
        params: list[Any] = [run_id, kind, variant]
        if iteration is not None:
            sql += " AND iteration = ?"
            params.append(iteration)
        rows = self._query(sql + " ORDER BY iteration DESC LIMIT 1", params)
        if not rows:
            return None
        row = rows[0]
        row["metrics"] = json.loads(row.pop("metrics_json"))
        return row

    def log_metrics(self, run_id: int, iteration: int, stage: str, step: int, values: dict[str, float]) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO metrics (run_id, iteration, stage, name, step, value, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(run_id, iteration, stage, name, step, float(value), now()) for name, value in values.items()],
            )

    def metrics(self, run_id: int, *, stage: str | None = None, iteration: int | None = None) -> list[MetricRow]:
        where: list[str] = ["run_id = ?"]
        params: list[Any] = [run_id]
        for column, value in (("stage", stage), ("iteration", iteration)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        return self._query(f"SELECT * FROM metrics WHERE {' AND '.join(where)} ORDER BY iteration, stage, step, id",
                           params)
