"""Runs, their iterations and their stages: what the loop has done, and under which config.

A run is named and keeps the config it continues with. A stage of an iteration is 'running' from
`start_stage` until `finish_stage` marks it 'done', 'failed' or 'cancelled' with its info (a job
killed before it could say so is ended by `end_running_stages`); the loop skips done
stages when it resumes, and a restarted stage first drops the step metrics of its unfinished attempt.

Not covered here: what the stages do (loop.py, stages.py), checkpoints and metrics (checkpoints.py).
"""
from __future__ import annotations

import json

from lab.records import RunRow, StageRow
from lab.store.core import StoreCore, StoreError, now
from lab.store.schema import STAGE_STATES


class RunTables(StoreCore):
    def create_run(self, name: str, preset: str, config_json: str) -> int:
        """Return the run called `name`, creating it with this config when new."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO runs (name, preset, config_json, created_at) VALUES (?, ?, ?, ?)",
                (name, preset, config_json, now()),
            )
            return int(db.execute("SELECT id FROM runs WHERE name = ?", (name,)).fetchone()[0])

    def set_run_config(self, run_id: int, config_json: str) -> None:
        """Record the config a run continues with (the one its later stages run under)."""
        with self.transaction() as db:
            db.execute("UPDATE runs SET config_json = ? WHERE id = ?", (config_json, run_id))

    def run_id(self, name: str) -> int:
        row = self.db.execute("SELECT id FROM runs WHERE name = ?", (name,)).fetchone()
        if row is None:
            known = ", ".join(r["name"] for r in self.runs()) or "none yet"
            raise StoreError(f"no run called {name!r} in {self.path} (runs: {known}); "
                             "start one with `python -m lab run`")
        return int(row[0])

    def runs(self) -> list[RunRow]:
        return self._query("SELECT * FROM runs ORDER BY id")

    def run(self, name: str) -> RunRow:
        """The run row called `name` (StoreError naming the known runs when there is none)."""
        run_id = self.run_id(name)
        rows: list[RunRow] = self._query("SELECT * FROM runs WHERE id = ?", (run_id,))
        return rows[0]

    def ensure_iteration(self, run_id: int, number: int) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO iterations (run_id, number, created_at) VALUES (?, ?, ?)",
                (run_id, number, now()),
            )

    def iterations(self, run_id: int) -> list[int]:
        return [r["number"] for r in self._query("SELECT number FROM iterations WHERE run_id = ? ORDER BY number",
                                                 (run_id,))]

    def stage_status(self, run_id: int, iteration: int, name: str) -> str | None:
        row = self.db.execute(
            "SELECT status FROM stages WHERE run_id = ? AND iteration = ? AND name = ?", (run_id, iteration, name)
        ).fetchone()
        return row[0] if row else None

    def start_stage(self, run_id: int, iteration: int, name: str) -> None:
        """Mark a stage running and drop the step metrics of any earlier, unfinished attempt."""
        with self.transaction() as db:
            db.execute("DELETE FROM metrics WHERE run_id = ? AND iteration = ? AND stage = ?",
                       (run_id, iteration, name))
            db.execute(
                "INSERT INTO stages (run_id, iteration, name, status, started_at) VALUES (?, ?, ?, 'running', ?) "
                "ON CONFLICT (run_id, iteration, name) DO UPDATE SET status = 'running', "
                "started_at = excluded.started_at, finished_at = NULL, info_json = NULL",
                (run_id, iteration, name, now()),
            )

    def finish_stage(self, run_id: int, iteration: int, name: str, status: str = "done",
                     info: dict | None = None) -> None:
        if status not in STAGE_STATES:
            raise ValueError(f"stage status must be one of {STAGE_STATES}")
        with self.transaction() as db:
            db.execute(
                "UPDATE stages SET status = ?, finished_at = ?, info_json = ? "
                "WHERE run_id = ? AND iteration = ? AND name = ?",
                (status, now(), json.dumps(info or {}), run_id, iteration, name),
            )

    def end_running_stages(self, run_id: int, status: str, info: dict) -> int:
        """Mark the run's stages still 'running' as `status` (for a job that ended without saying so,
        killed or cancelled); how many were."""
        if status not in STAGE_STATES or status == "running":
            raise ValueError(f"an ended stage's status must be one of {STAGE_STATES[1:]}")
        with self.transaction() as db:
            return db.execute("UPDATE stages SET status = ?, finished_at = ?, info_json = ? "
                              "WHERE run_id = ? AND status = 'running'",
                              (status, now(), json.dumps(info), run_id)).rowcount

    def stages(self, run_id: int) -> list[StageRow]:
        return self._query("SELECT * FROM stages WHERE run_id = ? ORDER BY started_at", (run_id,))
