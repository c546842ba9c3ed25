"""The store's schema: the tables, and the migrations that upgrade a store written by older code.

MIGRATIONS[i] takes a store from schema version i to i + 1 (`PRAGMA user_version`); a new store runs
them all. Each is a script of `;`-separated statements, run inside the opening transaction, so a
store is upgraded wholly or not at all. A migration is never edited once released: a change to the
schema is a new migration that upgrades old stores in place, their rows kept.

The CHECK constraints spell out the closed vocabularies below; the writers check them first to give
a clear error.

Not covered here: opening connections and running the migrations (core.py), reading or writing rows
(the per-table modules).
"""
from __future__ import annotations

import sqlite3

LABELS = ("hard_negative", "positive", "exclude")
ORIGINS = ("sample", "greedy", "reference")
PAIR_KINDS = ("execution", "hard_negative", "manual")
STAGE_STATES = ("running", "done", "failed", "cancelled")

MIGRATIONS: list[str] = [
    # version 1
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        preset TEXT NOT NULL,
        config_json TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE iterations (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        number INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (run_id, number)
    );
    CREATE TABLE stages (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        iteration INTEGER NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
        started_at TEXT NOT NULL,
        finished_at TEXT,
        info_json TEXT,
        PRIMARY KEY (run_id, iteration, name)
    );
    CREATE TABLE problems (
        id TEXT PRIMARY KEY,
        language TEXT NOT NULL,
        prompt TEXT NOT NULL,
        tests TEXT NOT NULL,
        stop_tokens_json TEXT NOT NULL,
        entry_point TEXT NOT NULL,
        source TEXT NOT NULL,
        split TEXT NOT NULL,
        training_allowed INTEGER NOT NULL,
        reference TEXT
    );
    CREATE TABLE run_problems (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        problem_id TEXT NOT NULL REFERENCES problems(id),
        role TEXT NOT NULL CHECK (role IN ('train', 'validation', 'eval')),
        PRIMARY KEY (run_id, role, problem_id)
    );
    CREATE TABLE candidates (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        iteration INTEGER NOT NULL,
        problem_id TEXT NOT NULL REFERENCES problems(id),
        origin TEXT NOT NULL CHECK (origin IN ('sample', 'greedy', 'reference')),
        model TEXT NOT NULL,
        sample_index INTEGER NOT NULL,
        completion TEXT NOT NULL,
        temperature REAL,
        top_p REAL,
        seed INTEGER,
        mean_logprob REAL,
        num_tokens INTEGER,
        created_at TEXT NOT NULL,
        UNIQUE (run_id, iteration, problem_id, origin, model, sample_index)
    );
    CREATE INDEX candidates_by_problem ON candidates (run_id, problem_id);
    CREATE TABLE executions (
        candidate_id INTEGER PRIMARY KEY REFERENCES candidates(id),
        status TEXT NOT NULL,
        exit_code INTEGER,
        passed INTEGER NOT NULL,
        stdout TEXT NOT NULL,
        stderr TEXT NOT NULL,
        duration_s REAL NOT NULL,
        toolchain TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE scores (
        candidate_id INTEGER NOT NULL REFERENCES candidates(id),
        reward_model TEXT NOT NULL,
        score REAL NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (candidate_id, reward_model)
    );
    CREATE TABLE pairs (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        iteration INTEGER NOT NULL,
        problem_id TEXT NOT NULL REFERENCES problems(id),
        chosen_id INTEGER NOT NULL REFERENCES candidates(id),
        rejected_id INTEGER NOT NULL REFERENCES candidates(id),
        kind TEXT NOT NULL CHECK (kind IN ('execution', 'hard_negative', 'manual')),
        created_at TEXT NOT NULL,
        UNIQUE (run_id, chosen_id, rejected_id)
    );
    CREATE TABLE labels (
        id INTEGER PRIMARY KEY,
        candidate_id INTEGER NOT NULL REFERENCES candidates(id),
        label TEXT CHECK (label IS NULL OR label IN ('hard_negative', 'positive', 'exclude')),
        note TEXT NOT NULL DEFAULT '',
        author TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX labels_by_candidate ON labels (candidate_id, id);
    CREATE TABLE checkpoints (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        iteration INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('generator', 'reward_model')),
        version TEXT NOT NULL UNIQUE,
        path TEXT NOT NULL,
        metrics_json TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (run_id, iteration, kind)
    );
    CREATE TABLE metrics (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        iteration INTEGER NOT NULL,
        stage TEXT NOT NULL,
        name TEXT NOT NULL,
        step INTEGER NOT NULL,
        value REAL NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX metrics_by_stage ON metrics (run_id, iteration, stage);
    CREATE TABLE evaluations (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        iteration INTEGER NOT NULL,
        benchmark TEXT NOT NULL,
        language TEXT NOT NULL,
        method TEXT NOT NULL,
        pass_at_1 REAL NOT NULL,
        ci_low REAL,
        ci_high REAL,
        n_problems INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (run_id, iteration, benchmark, language, method)
    );
    """,
    # version 2: a candidate's current label (its newest label row), defined once
    """
    CREATE VIEW current_labels AS
        SELECT l.* FROM labels l
        WHERE l.id = (SELECT MAX(newer.id) FROM labels newer WHERE newer.candidate_id = l.candidate_id);
    """,
    # version 3: what a reward model measures on a set it never trained on, after each training
    """
    CREATE TABLE measurements (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        iteration INTEGER NOT NULL,
        eval_set TEXT NOT NULL,
        name TEXT NOT NULL,
        value REAL,
        count INTEGER,
        created_at TEXT NOT NULL,
        PRIMARY KEY (run_id, iteration, eval_set, name)
    );
    """,
    # version 4: a 95% interval beside a measurement where one is defined (NULL where not)
    """
    ALTER TABLE measurements ADD COLUMN ci_low REAL;
    ALTER TABLE measurements ADD COLUMN ci_high REAL;
    """,
    # version 5: a measurement's key as two fields, what it measures and of what (MeasureKey), instead
    # of one name 'measure/subject'; stored names are split at their first '/' ('lambda' -> subject '')
    """
    CREATE TABLE measurements_by_key (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        iteration INTEGER NOT NULL,
        eval_set TEXT NOT NULL,
        measure TEXT NOT NULL,
        subject TEXT NOT NULL DEFAULT '',
        value REAL,
        count INTEGER,
        ci_low REAL,
        ci_high REAL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (run_id, iteration, eval_set, measure, subject)
    );
    INSERT INTO measurements_by_key (run_id, iteration, eval_set, measure, subject, value, count, ci_low, ci_high,
                                     created_at)
        SELECT run_id, iteration, eval_set,
               CASE WHEN instr(name, '/') > 0 THEN substr(name, 1, instr(name, '/') - 1) ELSE name END,
               CASE WHEN instr(name, '/') > 0 THEN substr(name, instr(name, '/') + 1) ELSE '' END,
               value, count, ci_low, ci_high, created_at
        FROM measurements;
    DROP TABLE measurements;
    ALTER TABLE measurements_by_key RENAME TO measurements;
    """,
    # version 6: pass@1 rows per generator too (the base model, gen-0, gen-k, reference models), so a
    # table keeps the untouched model's rows beside the iteration's; stored rows get generator ''
    """
    CREATE TABLE evaluations_by_generator (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        iteration INTEGER NOT NULL,
        benchmark TEXT NOT NULL,
        language TEXT NOT NULL,
        generator TEXT NOT NULL DEFAULT '',
        method TEXT NOT NULL,
        pass_at_1 REAL NOT NULL,
        ci_low REAL,
        ci_high REAL,
        n_problems INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (run_id, iteration, benchmark, language, generator, method)
    );
    INSERT INTO evaluations_by_generator (run_id, iteration, benchmark, language, generator, method, pass_at_1, ci_low,
                                          ci_high, n_problems, created_at)
        SELECT run_id, iteration, benchmark, language, '', method, pass_at_1, ci_low, ci_high, n_problems, created_at
        FROM evaluations;
    DROP TABLE evaluations;
    ALTER TABLE evaluations_by_generator RENAME TO evaluations;
    """,
    # version 7: labels for a team. A label row carries its candidate's label version (1 for the first
    # row, +1 per row: what optimistic concurrency compares), the action it was written by (rows written
    # together, a bulk label, share one number) and, for the rows of an undo, the action
    # it undoes. Old rows are numbered in id order, each its own action. A stage can end 'cancelled'.
    """
    ALTER TABLE labels ADD COLUMN version INTEGER;
    ALTER TABLE labels ADD COLUMN action INTEGER;
    ALTER TABLE labels ADD COLUMN undoes INTEGER;
    UPDATE labels SET action = id, version = (SELECT COUNT(*) FROM labels older
                                              WHERE older.candidate_id = labels.candidate_id AND older.id <= labels.id);
    CREATE UNIQUE INDEX labels_by_version ON labels (candidate_id, version);
    CREATE INDEX labels_by_author ON labels (author, action);
    CREATE INDEX labels_by_undone_action ON labels (undoes) WHERE undoes IS NOT NULL;
    CREATE TABLE stages_with_cancelled (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        iteration INTEGER NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'cancelled')),
        started_at TEXT NOT NULL,
        finished_at TEXT,
        info_json TEXT,
        PRIMARY KEY (run_id, iteration, name)
    );
    INSERT INTO stages_with_cancelled SELECT run_id, iteration, name, status, started_at, finished_at, info_json
        FROM stages;
    DROP TABLE stages;
    ALTER TABLE stages_with_cancelled RENAME TO stages;
    """,
    # version 8: each candidate's verdict on its prompt's visible examples alone (lab/examples.py), and
    # reward models trained beside an iteration's own (the study's controls) as checkpoint variants
    """
    CREATE TABLE example_verdicts (
        candidate_id INTEGER PRIMARY KEY REFERENCES candidates(id),
        examples INTEGER NOT NULL,
        passed INTEGER,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE checkpoints_by_variant (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        iteration INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('generator', 'reward_model')),
        variant TEXT NOT NULL DEFAULT '',
        version TEXT NOT NULL UNIQUE,
        path TEXT NOT NULL,
        metrics_json TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (run_id, iteration, kind, variant)
    );
    INSERT INTO checkpoints_by_variant (id, run_id, iteration, kind, variant, version, path, metrics_json, created_at)
        SELECT id, run_id, iteration, kind, '', version, path, metrics_json, created_at FROM checkpoints;
    DROP TABLE checkpoints;
    ALTER TABLE checkpoints_by_variant RENAME TO checkpoints;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


def apply_migrations(db: sqlite3.Connection, version: int) -> None:
    """Upgrade a store at schema `version` (< SCHEMA_VERSION) to SCHEMA_VERSION, inside the caller's
    transaction."""
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        for statement in script.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {number}")
