"""The Export tab's handler: write the selected run's curated dataset (lab/curation.py: the pairs the
reward-model training uses, labels applied; current labels and the full label history; JSONL,
Parquet and a `datasets` folder) under <lab_dir>/exports and offer its zip and files for download.
The app serves that folder alone (layout.py's `allowed_paths`), wherever the lab directory is.

Not covered here: which pairs count and the files' contents (curation.py).
"""
from __future__ import annotations

from typing import Any

from lab import curation
from lab.app.state import Lab, View
from lab.store import StoreError

EXPORTS = "exports"
"""Under the lab directory: where the app writes exports (and the one folder it serves files from)."""


def export_run(lab: Lab, view: View) -> dict[str, Any]:
    """Export the view's run: the files to download and a message (an error is a message too)."""
    if not view.run or view.run not in lab.runs():
        return {"export_files": None, "export_message": "Pick a run first."}
    try:
        export = curation.export_dataset(lab.reader, view.run, lab.lab_dir / EXPORTS)
    except (OSError, StoreError, ValueError) as error:
        return {"export_files": None, "export_message": f"Export failed: {error}"}
    counts = export.counts
    dropped = (f" ({counts['pairs_dropped_by_labels']} more left out because a label contradicts them: see "
               "pairs-dropped.jsonl)" if counts["pairs_dropped_by_labels"] else "")
    return {"export_files": [str(path) for path in export.files()],
            "export_message": f"Exported run **{view.run}**: {counts['pairs']} pairs as the next reward-model training "
                              f"would use them{dropped}, {counts['labels_current']} current labels and "
                              f"{counts['label_rows']} label rows of history, to `{export.folder}` (download the zip, "
                              "or single files, below; load the `datasets` folder with `datasets.load_from_disk`)."}
