"""A run's labels and pairs out of the store: JSONL files and a `datasets.Dataset`.

Files are written atomically (a `.partial` file renamed into place), so a crash mid-export never
leaves a half file where a full one was. Pairs carry TRL's columns (prompt, chosen, rejected) plus
where they came from; labels their whole history with the candidate and problem each is about.

Not covered here: reading rows for the app (app_queries.py), the app's export tab (app.py).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from lab.store.pairs import PairTables

DATASET_COLUMNS: Final = ("prompt", "chosen", "rejected", "problem_id", "kind", "iteration")


class Exports(PairTables):
    def export_labels(self, run_id: int, path: str | Path) -> int:
        """Every label row (full history) with the candidate and problem it is about, as JSONL."""
        rows = self._query(
            "SELECT l.id AS label_id, l.label, l.note, l.author, l.created_at, c.id AS candidate_id, c.iteration, "
            "c.problem_id, c.model, c.completion, p.language, p.prompt, e.passed, e.status "
            "FROM labels l JOIN candidates c ON c.id = l.candidate_id JOIN problems p ON p.id = c.problem_id "
            "LEFT JOIN executions e ON e.candidate_id = c.id WHERE c.run_id = ? ORDER BY l.id",
            (run_id,),
        )
        return _write_jsonl(path, rows)

    def export_pairs(self, run_id: int, path: str | Path) -> int:
        """Preference pairs as JSONL with TRL's columns (prompt, chosen, rejected) plus provenance."""
        rows = [
            {"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"], "problem_id": r["problem_id"],
             "language": r["language"], "kind": r["kind"], "iteration": r["iteration"],
             "chosen_id": r["chosen_id"], "rejected_id": r["rejected_id"]}
            for r in self.pairs(run_id)
        ]
        return _write_jsonl(path, rows)

    def pairs_dataset(self, run_id: int) -> Any:
        """The run's pairs as a `datasets.Dataset` with columns prompt / chosen / rejected (+ provenance)."""
        import datasets  # type: ignore[import-untyped]

        rows = self.pairs(run_id)
        return datasets.Dataset.from_dict({column: [row[column] for row in rows] for column in DATASET_COLUMNS})


def _write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> int:
    """Write atomically: a crash mid-export never leaves a half file where a full one was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    partial.replace(path)
    return len(rows)
