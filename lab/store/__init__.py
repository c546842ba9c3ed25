"""The store: one SQLite database (WAL) per lab directory holding everything a run produces, and the
only code that reads or writes it (only this package holds SQL).

Data flows one way through it: problems -> candidates -> executions -> scores -> pairs ->
checkpoints, with manual labels, metrics and evaluations beside them. Every multi-row write is one
transaction, so a crash or `kill -9` leaves either all of a write or none of it, and two processes
(the training loop and the app) can write at once. Reads return the typed rows of lab/records.py.

`Store(path)` opens (creating or upgrading) the database; `Store(path, readonly=True)`, or
`store.reader()`, opens it read-only. Its methods come by concern from these modules:

  core.py         connections, transactions, the read-only reader, schema checks (StoreCore)
  schema.py       the tables and the migrations that upgrade old stores in place
  runs.py         runs, iterations, stages                                 (RunTables)
  problems.py     problems and the runs they belong to; the licence guard  (ProblemTables)
  candidates.py   candidates, executions, scores                           (CandidateTables)
  examples.py     each candidate's verdict on its prompt's visible examples (ExampleTables)
  pairs.py        preference pairs                                         (PairTables)
  labels.py       append-only manual labels: versions, actions, undo       (LabelTables)
  checkpoints.py  checkpoints and training-step metrics                    (CheckpointTables)
  evaluations.py  pass@1 evaluations and measurements                      (EvaluationTables)
  app_queries.py  the app's short reads                                    (AppQueries)
  export.py       a run's labels as an export writes them                  (Exports)

Not covered here: deciding what to write (loop.py, stages.py, mining.py, evaluation.py) or how to
show it (app.py, reports.py, plots.py).
"""
from __future__ import annotations

from lab.store.app_queries import AppQueries
from lab.store.candidates import OUTPUT_CAP_CHARS, CandidateTables, ExecutionOutcome, cap_output
from lab.store.checkpoints import CheckpointTables
from lab.store.core import StoreError, damaged_store_error, is_damage, now
from lab.store.evaluations import EvaluationTables
from lab.store.examples import ExampleTables
from lab.store.export import Exports
from lab.store.labels import LabelConflict, LabelTables
from lab.store.problems import ProblemTables
from lab.store.runs import RunTables
from lab.store.schema import LABELS, MIGRATIONS, ORIGINS, PAIR_KINDS, SCHEMA_VERSION, STAGE_STATES

__all__ = ["Store", "StoreError", "LabelConflict", "damaged_store_error", "is_damage", "ExecutionOutcome",
           "MIGRATIONS", "SCHEMA_VERSION", "LABELS", "ORIGINS", "PAIR_KINDS", "STAGE_STATES", "OUTPUT_CAP_CHARS",
           "cap_output", "now"]


class Store(RunTables, ProblemTables, CandidateTables, ExampleTables, Exports, LabelTables, CheckpointTables,
            EvaluationTables, AppQueries):
    """Open (creating or upgrading) the database at `path`, or with `readonly=True` an existing one
    read-only. One connection per thread. `with Store(path) as store:` closes this thread's on exit."""
