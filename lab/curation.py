"""The curated dataset: the preference pairs a reward model trains on, with the manual labels applied,
and its export.

`training_pairs` is the one decision of which stored pairs count: the reward-model stage trains on
its kept pairs (loop.py) and an export writes them, so an export is exactly what the next training
would see. A pair is left out when a label given after it was built contradicts it
(mining.pair_contradiction: a side excluded, a chosen side labelled hard negative, a rejected side
labelled positive); the export lists those with the reason.

An export is one folder `<exports>/<run>-<time>/` and a zip of it beside it (the app's exports go to
<lab_dir>/exports):

  pairs.jsonl, pairs.parquet   the kept pairs: TRL's prompt / chosen / rejected plus provenance
  pairs-dataset/               the same as a `datasets` folder (datasets.load_from_disk)
  pairs-dropped.jsonl          pairs a label contradicts, with the reason
  labels-current.jsonl         each labelled candidate's current label, with the candidate and prompt
  labels-history.jsonl         every label row (clears and undos included), in order
  manifest.json                run, time, counts, and the files

Every file is written under a `.partial` name and renamed into place, and the folder is renamed
into place last, so a crash mid-export never leaves a half export where a whole one seems to be.

Not covered here: building pairs (mining.py), the SQL reads (lab/store/export.py), the app's
Export tab (lab/app/export.py).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from lab import mining
from lab.records import PairRow
from lab.store import Store

PAIR_COLUMNS = ("prompt", "chosen", "rejected", "problem_id", "language", "kind", "iteration", "chosen_id",
                "rejected_id", "chosen_origin", "rejected_origin")


@dataclass(frozen=True)
class CuratedPairs:
    kept: list[PairRow]
    dropped: list[tuple[PairRow, str]]
    """Pairs a later label contradicts, each with the reason."""


def training_pairs(store: Store, run_id: int, up_to_iteration: int | None = None,
                   labels_from: int | None = None) -> CuratedPairs:
    """The run's pairs (of iterations <= `up_to_iteration`) with the current labels of its candidates
    applied: those of run `labels_from` when its candidates are another run's (loop.candidates_from)."""
    labels = {candidate_id: row["label"]
              for candidate_id, row in store.current_labels(run_id if labels_from is None else labels_from).items()}
    kept, dropped = [], []
    for pair in store.pairs(run_id, up_to_iteration=up_to_iteration):
        reason = mining.pair_contradiction(pair, labels)
        if reason is None:
            kept.append(pair)
        else:
            dropped.append((pair, reason))
    return CuratedPairs(kept, dropped)


@dataclass(frozen=True)
class Export:
    folder: Path
    zip_path: Path
    counts: dict[str, int]

    def files(self) -> list[Path]:
        """The zip first, then the single files (the datasets folder is in the zip)."""
        return [self.zip_path] + sorted(p for p in self.folder.iterdir() if p.is_file())


def export_dataset(store: Store, run_name: str, exports_dir: str | Path) -> Export:
    """Write the run's curated dataset (the files in the module docstring) and its zip under
    `exports_dir` (the app's: <lab_dir>/exports)."""
    run_id = store.run_id(run_name)
    curated = training_pairs(store, run_id)
    exports_dir = Path(exports_dir)
    folder = exports_dir / f"{run_name}-{datetime.now():%Y%m%d-%H%M%S-%f}"
    partial = exports_dir / f".{folder.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    current, history = store.labels_for_export(run_id, history=False), store.labels_for_export(run_id, history=True)
    counts = {"pairs": len(curated.kept), "pairs_dropped_by_labels": len(curated.dropped),
              "labels_current": len(current), "label_rows": len(history)}
    for pair_format, name in PAIR_FILES.items():
        write_pairs(curated.kept, partial / name, pair_format)
    write_jsonl(partial / "pairs-dropped.jsonl", [{**pair_record(pair), "reason": reason}
                                                  for pair, reason in curated.dropped])
    write_jsonl(partial / "labels-current.jsonl", current)
    write_jsonl(partial / "labels-history.jsonl", history)
    manifest = {"run": run_name, "exported_at": datetime.now().isoformat(timespec="seconds"), "counts": counts,
                "rule": "the pairs the reward-model training uses: a pair that a later label contradicts is left out "
                        "(lab.curation.training_pairs)", "files": sorted(p.name for p in partial.iterdir())}
    (partial / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    partial.replace(folder)
    zip_partial = shutil.make_archive(str(exports_dir / f".{folder.name}.partial"), "zip", exports_dir, folder.name)
    zip_path = folder.with_name(folder.name + ".zip")
    Path(zip_partial).replace(zip_path)
    return Export(folder, zip_path, counts)


PAIR_FILES = {"jsonl": "pairs.jsonl", "parquet": "pairs.parquet", "dataset": "pairs-dataset"}


def write_pairs(pairs: list[PairRow], path: str | Path, pair_format: str) -> int:
    """Pairs as JSONL, Parquet or a `datasets` folder (PAIR_COLUMNS), written atomically; how many."""
    if pair_format not in PAIR_FILES:
        raise ValueError(f"pair format {pair_format!r}: choose one of {', '.join(PAIR_FILES)}")
    records = [pair_record(pair) for pair in pairs]
    if pair_format == "jsonl":
        return write_jsonl(path, records)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    frame = pd.DataFrame(records, columns=list(PAIR_COLUMNS))
    if pair_format == "parquet":
        frame.to_parquet(partial, index=False)
    else:
        import datasets  # type: ignore[import-untyped]  # heavy: only this export needs it
        datasets.Dataset.from_pandas(frame, preserve_index=False).save_to_disk(str(partial))
    if path.is_dir():
        shutil.rmtree(path)
    partial.replace(path)
    return len(records)


def pair_record(pair: PairRow) -> dict[str, Any]:
    return {column: pair[column] for column in PAIR_COLUMNS}  # type: ignore[literal-required]


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> int:
    """Write rows as JSON lines atomically (a `.partial` file renamed into place); how many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    partial.replace(path)
    return len(rows)
