"""The store: one SQLite database (WAL) per lab directory holding everything a run produces.

Data flows one way through it: problems -> candidates -> executions -> scores -> pairs ->
checkpoints, with manual labels, metrics and evaluations beside them. Every multi-row write
is one `BEGIN IMMEDIATE` transaction, so a crash or `kill -9` leaves either all of a write or
none of it, and two processes (the training loop and the app) can write at once: the second
waits for the first (busy timeout) instead of failing. Labels are append-only: the current
label of a candidate is its newest row, and undo appends the previous one back.

The schema is versioned (`PRAGMA user_version`) and upgraded by the MIGRATIONS list.

Not covered here: deciding what to write (loop.py, mining.py) or how to show it (app.py).
"""
from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

from lab.problems import LicenceError, Problem

LABELS = ("hard_negative", "positive", "exclude")
ORIGINS = ("sample", "greedy", "reference")
PAIR_KINDS = ("execution", "hard_negative", "manual")
STAGE_STATES = ("running", "done", "failed")
OUTPUT_CAP_CHARS = 16_000

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
]


class StoreError(RuntimeError):
    """A write or read the store refuses; the message says why and what to do."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _real(value: float | None) -> float | None:
    return None if value is None else float(value)


def cap_output(text: str) -> str:
    if len(text) <= OUTPUT_CAP_CHARS:
        return text
    return text[:OUTPUT_CAP_CHARS] + f"\n[... {len(text) - OUTPUT_CAP_CHARS} more characters dropped]"


class Store:
    """Open (creating or upgrading) the database at `path`. One connection per thread."""

    def __init__(self, path: str | Path, busy_timeout_s: float = 60.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._migrate()

    # ------------------------------------------------------------ plumbing

    @property
    def db(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None)
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
            self._local.connection = connection
        return connection

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All statements inside commit together or not at all (nested calls join the outer one)."""
        db = self.db
        if db.in_transaction:
            yield db
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _query(self, sql: str, params: Iterable = ()) -> list[dict]:
        return [dict(row) for row in self.db.execute(sql, tuple(params))]

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        with self.transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path} has schema version {version}, newer than this code knows "
                    f"({len(MIGRATIONS)}): upgrade the lab package or use another lab directory"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")

    def integrity_check(self) -> str:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]

    # ------------------------------------------------------------ runs, iterations, stages

    def create_run(self, name: str, preset: str, config_json: str) -> int:
        """Return the run called `name`, creating it with this config when new."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO runs (name, preset, config_json, created_at) VALUES (?, ?, ?, ?)",
                (name, preset, config_json, now()),
            )
            return db.execute("SELECT id FROM runs WHERE name = ?", (name,)).fetchone()[0]

    def set_run_config(self, run_id: int, config_json: str) -> None:
        """Record the config a run continues with (the one its later stages run under)."""
        with self.transaction() as db:
            db.execute("UPDATE runs SET config_json = ? WHERE id = ?", (config_json, run_id))

    def run_id(self, name: str) -> int:
        row = self.db.execute("SELECT id FROM runs WHERE name = ?", (name,)).fetchone()
        if row is None:
            known = ", ".join(r["name"] for r in self.runs()) or "none yet"
            raise StoreError(f"no run called {name!r} in {self.path} (runs: {known}); start one with `python -m lab run`")
        return row[0]

    def runs(self) -> list[dict]:
        return self._query("SELECT * FROM runs ORDER BY id")

    def run(self, name: str) -> dict:
        """The run row called `name` (StoreError naming the known runs when there is none)."""
        run_id = self.run_id(name)
        return self._query("SELECT * FROM runs WHERE id = ?", (run_id,))[0]

    def ensure_iteration(self, run_id: int, number: int) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO iterations (run_id, number, created_at) VALUES (?, ?, ?)",
                (run_id, number, now()),
            )

    def iterations(self, run_id: int) -> list[int]:
        return [r["number"] for r in self._query("SELECT number FROM iterations WHERE run_id = ? ORDER BY number", (run_id,))]

    def stage_status(self, run_id: int, iteration: int, name: str) -> str | None:
        row = self.db.execute(
            "SELECT status FROM stages WHERE run_id = ? AND iteration = ? AND name = ?", (run_id, iteration, name)
        ).fetchone()
        return row[0] if row else None

    def start_stage(self, run_id: int, iteration: int, name: str) -> None:
        """Mark a stage running and drop the step metrics of any earlier, unfinished attempt."""
        with self.transaction() as db:
            db.execute("DELETE FROM metrics WHERE run_id = ? AND iteration = ? AND stage = ?", (run_id, iteration, name))
            db.execute(
                "INSERT INTO stages (run_id, iteration, name, status, started_at) VALUES (?, ?, ?, 'running', ?) "
                "ON CONFLICT (run_id, iteration, name) DO UPDATE SET status = 'running', "
                "started_at = excluded.started_at, finished_at = NULL, info_json = NULL",
                (run_id, iteration, name, now()),
            )

    def finish_stage(self, run_id: int, iteration: int, name: str, status: str = "done", info: dict | None = None) -> None:
        if status not in STAGE_STATES:
            raise ValueError(f"stage status must be one of {STAGE_STATES}")
        with self.transaction() as db:
            db.execute(
                "UPDATE stages SET status = ?, finished_at = ?, info_json = ? WHERE run_id = ? AND iteration = ? AND name = ?",
                (status, now(), json.dumps(info or {}), run_id, iteration, name),
            )

    def stages(self, run_id: int) -> list[dict]:
        return self._query("SELECT * FROM stages WHERE run_id = ? ORDER BY started_at", (run_id,))

    # ------------------------------------------------------------ problems

    def add_problems(self, problems: list[Problem], run_id: int | None = None, role: str | None = None) -> None:
        """Insert problems (an id already stored must have identical content) and link them to a run."""
        if role is not None and role != "eval":
            evaluation_only = [p.id for p in problems if not p.training_allowed]
            if evaluation_only:
                raise LicenceError(f"{evaluation_only[0]} is evaluation-only and cannot be a {role!r} problem")
        with self.transaction() as db:
            for problem in problems:
                values = _problem_values(problem)
                stored = db.execute("SELECT * FROM problems WHERE id = ?", (problem.id,)).fetchone()
                if stored is None:
                    db.execute(f"INSERT INTO problems VALUES ({', '.join('?' * len(values))})", values)
                elif tuple(stored) != values:
                    raise StoreError(
                        f"problem {problem.id!r} is already stored with different content: "
                        "results recorded for it would change meaning; use another lab directory or id"
                    )
                if run_id is not None:
                    db.execute(
                        "INSERT OR IGNORE INTO run_problems (run_id, problem_id, role) VALUES (?, ?, ?)",
                        (run_id, problem.id, role),
                    )

    def problem(self, problem_id: str) -> Problem:
        row = self.db.execute("SELECT * FROM problems WHERE id = ?", (problem_id,)).fetchone()
        if row is None:
            raise StoreError(f"no problem {problem_id!r} in the store")
        return _problem_from_row(row)

    def run_problems(self, run_id: int, role: str) -> list[Problem]:
        rows = self.db.execute(
            "SELECT p.* FROM problems p JOIN run_problems r ON r.problem_id = p.id "
            "WHERE r.run_id = ? AND r.role = ? ORDER BY p.id",
            (run_id, role),
        )
        return [_problem_from_row(row) for row in rows]

    # ------------------------------------------------------------ candidates and executions

    def add_candidates(self, run_id: int, iteration: int, rows: list[dict]) -> list[int]:
        """Insert candidates; re-inserting the same (problem, origin, model, sample_index) is a no-op.
        Returns the ids in the order given."""
        ids = []
        with self.transaction() as db:
            for row in rows:
                if row.get("origin", "sample") not in ORIGINS:
                    raise ValueError(f"candidate origin must be one of {ORIGINS}, got {row.get('origin')!r}")
                key = (run_id, iteration, row["problem_id"], row.get("origin", "sample"), row["model"], row["sample_index"])
                db.execute(
                    "INSERT OR IGNORE INTO candidates (run_id, iteration, problem_id, origin, model, sample_index, "
                    "completion, temperature, top_p, seed, mean_logprob, num_tokens, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*key, row["completion"], row.get("temperature"), row.get("top_p"), row.get("seed"),
                     row.get("mean_logprob"), row.get("num_tokens"), now()),
                )
                ids.append(db.execute(
                    "SELECT id FROM candidates WHERE run_id = ? AND iteration = ? AND problem_id = ? AND origin = ? "
                    "AND model = ? AND sample_index = ?", key,
                ).fetchone()[0])
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
    ) -> list[dict]:
        """Candidates joined with their problem's language/split, execution, score under
        `reward_model` (column `reward`) and current label."""
        where, params = ["c.run_id = ?"], [run_id]
        for column, value in (("c.iteration", iteration), ("c.problem_id", problem_id), ("c.origin", origin), ("c.model", model)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if role is not None:
            where.append("EXISTS (SELECT 1 FROM run_problems r WHERE r.run_id = c.run_id AND r.problem_id = c.problem_id AND r.role = ?)")
            params.append(role)
        sql = (
            "SELECT c.*, p.language, p.split, e.status, e.exit_code, e.passed, e.stdout, e.stderr, e.duration_s, "
            "s.score AS reward, "
            "cl.label, cl.note AS label_note "
            "FROM candidates c JOIN problems p ON p.id = c.problem_id "
            "LEFT JOIN executions e ON e.candidate_id = c.id "
            "LEFT JOIN current_labels cl ON cl.candidate_id = c.id "
            "LEFT JOIN scores s ON s.candidate_id = c.id AND s.reward_model = ? "
            f"WHERE {' AND '.join(where)} ORDER BY c.problem_id, c.origin, c.model, c.sample_index, c.id"
        )
        params.insert(0, reward_model)
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        return self._query(sql, params)

    def candidate_counts_by_problem(self, run_id: int, *, iteration: int, origin: str, model: str) -> dict[str, int]:
        """problem_id -> how many candidates of this origin and model the iteration has."""
        rows = self._query(
            "SELECT problem_id, COUNT(*) AS n FROM candidates WHERE run_id = ? AND iteration = ? AND origin = ? "
            "AND model = ? GROUP BY problem_id", (run_id, iteration, origin, model))
        return {r["problem_id"]: r["n"] for r in rows}

    def candidate_counts(self, run_id: int) -> list[dict]:
        """Per (iteration, role): candidates, executed and passing."""
        return self._query(
            "SELECT c.iteration, rp.role, COUNT(*) AS candidates, COUNT(e.candidate_id) AS executed, "
            "COALESCE(SUM(e.passed), 0) AS passing FROM candidates c "
            "JOIN run_problems rp ON rp.run_id = c.run_id AND rp.problem_id = c.problem_id "
            "LEFT JOIN executions e ON e.candidate_id = c.id WHERE c.run_id = ? "
            "GROUP BY c.iteration, rp.role ORDER BY c.iteration, rp.role", (run_id,))

    def unexecuted_candidates(self, run_id: int, iteration: int | None = None) -> list[dict]:
        where = "c.run_id = ?" + (" AND c.iteration = ?" if iteration is not None else "")
        params = (run_id,) if iteration is None else (run_id, iteration)
        return self._query(
            "SELECT c.id, c.problem_id, c.completion FROM candidates c LEFT JOIN executions e ON e.candidate_id = c.id "
            f"WHERE {where} AND e.candidate_id IS NULL ORDER BY c.id",
            params,
        )

    def add_executions(self, results: list[tuple[int, object]]) -> None:
        """(candidate_id, ExecutionResult) pairs; a candidate's first recorded execution is kept."""
        with self.transaction() as db:
            for candidate_id, result in results:
                db.execute(
                    "INSERT OR IGNORE INTO executions (candidate_id, status, exit_code, passed, stdout, stderr, "
                    "duration_s, toolchain, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (candidate_id, result.status, result.exit_code, int(result.passed), cap_output(result.stdout),
                     cap_output(result.stderr), result.duration_s, result.toolchain, now()),
                )

    # ------------------------------------------------------------ scores

    def add_scores(self, reward_model: str, scores: list[tuple[int, float]]) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO scores (candidate_id, reward_model, score, created_at) VALUES (?, ?, ?, ?)",
                [(candidate_id, reward_model, float(score), now()) for candidate_id, score in scores],
            )

    def scored_candidate_ids(self, reward_model: str) -> set[int]:
        return {r["candidate_id"] for r in self._query("SELECT candidate_id FROM scores WHERE reward_model = ?",
                                                      (reward_model,))}

    def unscored_candidates(self, run_id: int, reward_model: str, iteration: int | None = None) -> list[dict]:
        where = "c.run_id = ?" + (" AND c.iteration = ?" if iteration is not None else "")
        params = (reward_model, run_id) if iteration is None else (reward_model, run_id, iteration)
        return self._query(
            "SELECT c.id, c.problem_id, c.completion FROM candidates c "
            "LEFT JOIN scores s ON s.candidate_id = c.id AND s.reward_model = ? "
            f"WHERE {where} AND s.candidate_id IS NULL ORDER BY c.id",
            params,
        )

    # ------------------------------------------------------------ pairs

    def add_pairs(self, run_id: int, iteration: int, pairs: list[tuple[int, int, str]]) -> int:
        """(chosen_id, rejected_id, kind) triples for training the reward model. Refuses
        evaluation-only problems and pairs across problems. Returns how many were new."""
        added = 0
        with self.transaction() as db:
            for chosen_id, rejected_id, kind in pairs:
                if kind not in PAIR_KINDS:
                    raise ValueError(f"pair kind must be one of {PAIR_KINDS}, got {kind!r}")
                rows = {r["id"]: r for r in db.execute(
                    "SELECT c.id, c.problem_id, p.training_allowed FROM candidates c JOIN problems p ON p.id = c.problem_id "
                    "WHERE c.id IN (?, ?)", (chosen_id, rejected_id))}
                if len(rows) != 2 or chosen_id == rejected_id:
                    raise StoreError(f"pair ({chosen_id}, {rejected_id}): both candidates must exist and differ")
                problem_ids = {r["problem_id"] for r in rows.values()}
                if len(problem_ids) != 1:
                    raise StoreError(f"pair ({chosen_id}, {rejected_id}) mixes problems {sorted(problem_ids)}")
                if not rows[chosen_id]["training_allowed"]:
                    raise LicenceError(f"{rows[chosen_id]['problem_id']} is evaluation-only: it cannot become training pairs")
                cursor = db.execute(
                    "INSERT OR IGNORE INTO pairs (run_id, iteration, problem_id, chosen_id, rejected_id, kind, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (run_id, iteration, problem_ids.pop(), chosen_id, rejected_id, kind, now()),
                )
                added += cursor.rowcount
        return added

    def pairs(self, run_id: int, *, up_to_iteration: int | None = None, problem_ids: Iterable[str] | None = None) -> list[dict]:
        """Pairs with the texts they compare: prompt, chosen, rejected (+ ids, kind, iteration)."""
        where, params = ["pr.run_id = ?"], [run_id]
        if up_to_iteration is not None:
            where.append("pr.iteration <= ?")
            params.append(up_to_iteration)
        rows = self._query(
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

    def pair_counts(self, run_id: int) -> list[dict]:
        """Per (iteration, kind): how many pairs, and how many use a reference solution on either side."""
        return self._query(
            "SELECT pr.iteration, pr.kind, COUNT(*) AS pairs, "
            "SUM(ch.origin = 'reference' OR rj.origin = 'reference') AS with_reference FROM pairs pr "
            "JOIN candidates ch ON ch.id = pr.chosen_id JOIN candidates rj ON rj.id = pr.rejected_id "
            "WHERE pr.run_id = ? GROUP BY pr.iteration, pr.kind ORDER BY pr.iteration, pr.kind", (run_id,))

    # ------------------------------------------------------------ labels

    def add_label(self, candidate_id: int, label: str | None, author: str, note: str = "") -> int:
        """Append a label (None clears). History is never rewritten."""
        if label is not None and label not in LABELS:
            raise ValueError(f"label must be one of {LABELS} or None, got {label!r}")
        if not author.strip():
            raise ValueError("a label needs an author")
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM candidates WHERE id = ?", (candidate_id,)).fetchone() is None:
                raise StoreError(f"no candidate {candidate_id}")
            cursor = db.execute(
                "INSERT INTO labels (candidate_id, label, note, author, created_at) VALUES (?, ?, ?, ?, ?)",
                (candidate_id, label, note, author, now()),
            )
            return cursor.lastrowid

    def undo_label(self, candidate_id: int, author: str) -> str | None:
        """Restore the label before the newest one, by appending it. Returns the restored label."""
        with self.transaction():
            history = self.label_history(candidate_id)
            if not history:
                raise StoreError(f"candidate {candidate_id} has no label to undo")
            restored = history[-2] if len(history) > 1 else {"label": None, "note": ""}
            self.add_label(candidate_id, restored["label"], author, restored["note"])
            return restored["label"]

    def label_history(self, candidate_id: int) -> list[dict]:
        return self._query("SELECT * FROM labels WHERE candidate_id = ? ORDER BY id", (candidate_id,))

    def current_labels(self, run_id: int) -> dict[int, dict]:
        """candidate_id -> newest label row, for candidates whose current label is not cleared."""
        rows = self._query(
            "SELECT l.* FROM current_labels l JOIN candidates c ON c.id = l.candidate_id WHERE c.run_id = ?",
            (run_id,),
        )
        return {r["candidate_id"]: r for r in rows if r["label"] is not None}

    # ------------------------------------------------------------ checkpoints, metrics, evaluations

    def add_checkpoint(self, run_id: int, iteration: int, kind: str, version: str, path: str, metrics: dict) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO checkpoints (run_id, iteration, kind, version, path, metrics_json, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, iteration, kind, version, path, json.dumps(metrics), now()),
            )

    def checkpoint(self, run_id: int, kind: str, iteration: int | None = None) -> dict | None:
        """The checkpoint of `kind` at `iteration`, or the latest one when iteration is None."""
        sql = "SELECT * FROM checkpoints WHERE run_id = ? AND kind = ?"
        params: list = [run_id, kind]
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
                "INSERT INTO metrics (run_id, iteration, stage, name, step, value, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(run_id, iteration, stage, name, step, float(value), now()) for name, value in values.items()],
            )

    def metrics(self, run_id: int, *, stage: str | None = None, iteration: int | None = None) -> list[dict]:
        where, params = ["run_id = ?"], [run_id]
        for column, value in (("stage", stage), ("iteration", iteration)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        return self._query(f"SELECT * FROM metrics WHERE {' AND '.join(where)} ORDER BY iteration, stage, step, id", params)

    def add_evaluations(self, run_id: int, iteration: int, rows: list[dict]) -> None:
        """Rows with benchmark, language, method, pass_at_1, ci_low, ci_high, n_problems; replaces earlier ones."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO evaluations (run_id, iteration, benchmark, language, method, pass_at_1, "
                "ci_low, ci_high, n_problems, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, iteration, r["benchmark"], r["language"], r["method"], r["pass_at_1"], r.get("ci_low"),
                  r.get("ci_high"), r["n_problems"], now()) for r in rows],
            )

    def add_measurements(self, run_id: int, iteration: int, eval_set: str, values: dict[str, tuple]) -> None:
        """name -> (value, count) or (value, count, ci_low, ci_high) measured in `iteration` on `eval_set`
        (e.g. 'mbpp-validation'); names such as 'pair_accuracy/reranker' or 'length_correlation/passed'.
        Replaces earlier ones."""
        rows = []
        for name, (value, count, *interval) in values.items():
            low, high = interval or (None, None)
            rows.append((run_id, iteration, eval_set, name, _real(value), count, _real(low), _real(high), now()))
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO measurements (run_id, iteration, eval_set, name, value, count, ci_low, ci_high, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def measurements(self, run_id: int, eval_set: str | None = None) -> list[dict]:
        where, params = "run_id = ?", [run_id]
        if eval_set is not None:
            where, params = where + " AND eval_set = ?", params + [eval_set]
        return self._query(f"SELECT * FROM measurements WHERE {where} ORDER BY iteration, eval_set, name", params)

    def evaluations(self, run_id: int) -> list[dict]:
        return self._query(
            "SELECT * FROM evaluations WHERE run_id = ? ORDER BY iteration, benchmark, language, method", (run_id,)
        )

    # ------------------------------------------------------------ export

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

    def pairs_dataset(self, run_id: int):
        """The run's pairs as a `datasets.Dataset` with columns prompt / chosen / rejected (+ provenance)."""
        import datasets

        rows = self.pairs(run_id)
        columns = ("prompt", "chosen", "rejected", "problem_id", "kind", "iteration")
        return datasets.Dataset.from_dict({c: [r[c] for r in rows] for c in columns})

    # ---- reads for the app (app.py, app_views.py, compare.py); nothing below writes

    class _ReadConnections(threading.local):
        """The per-thread connections of `reader()`: `db` takes `connection`, opened here on first
        use (and again after `close()` sets it to None) as read-only, decoding bad UTF-8 with U+FFFD."""

        def __init__(self, path: Path, busy_timeout_s: float):
            self.path, self.busy_timeout_s, self.opened = path, busy_timeout_s, None

        @property
        def connection(self) -> sqlite3.Connection:
            if self.opened is None:
                self.opened = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
                self.opened.row_factory = sqlite3.Row
                self.opened.text_factory = lambda raw: raw.decode("utf-8", "replace")
                self.opened.execute("PRAGMA query_only = ON")
            return self.opened

        @connection.setter
        def connection(self, value: sqlite3.Connection | None) -> None:
            self.opened = value

    def reader(self) -> "Store":
        """This store through its own read-only connections (one per thread) that decode text which
        is not UTF-8 with replacement characters instead of raising: for showing model output and
        program output, where one bad byte must not break a page. The store's own connections stay
        strict; every read method works on the reader, every write fails."""
        if isinstance(self._local, Store._ReadConnections):
            return self
        reader = self.__dict__.get("_reader")
        if reader is None:
            reader = object.__new__(Store)
            reader.__dict__.update(self.__dict__, _local=Store._ReadConnections(self.path, self._busy_timeout_s))
            self._reader = reader
        return reader

    def _named_query(self, sql: str, params: dict) -> list[dict]:
        return [dict(row) for row in self.db.execute(sql, params)]

    def candidate_iterations(self, run_id: int) -> list[int]:
        """The iterations of a run that have candidates, in order."""
        rows = self._query("SELECT DISTINCT iteration FROM candidates WHERE run_id = ? ORDER BY iteration", (run_id,))
        return [row["iteration"] for row in rows]

    def ranking_rows(self, run_id: int, iteration: int, *, problem_id: str | None = None, language: str | None = None,
                     split: str | None = None, search: str = "") -> list[dict]:
        """One short row per candidate of the iteration (no code, no outputs), by problem then id:
        id, problem_id, language, split, origin, passed, mean_logprob, label (current), mined (rejected
        side of a 'hard_negative' pair), ranked_by (the reward-model version that ranks its problem:
        the one that scored most of its candidates, the later-trained on a tie; None = none scored
        any), ranked_by_iteration (where that version was trained) and reward (its score under it).
        `search` matches the problem id or prompt as plain text."""
        where, params = ["c.run_id = :run", "c.iteration = :iteration"], {"run": run_id, "iteration": iteration}
        for column, value in (("c.problem_id", problem_id), ("p.language", language), ("p.split", split)):
            if value is not None:
                name = column.split(".")[1]
                where.append(f"{column} = :{name}")
                params[name] = value
        if search.strip():
            escaped = search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append("(c.problem_id LIKE :search ESCAPE '\\' OR p.prompt LIKE :search ESCAPE '\\')")
            params["search"] = f"%{escaped}%"
        selected = " AND ".join(where)
        return self._named_query(
            f"""
            WITH version_counts AS (
                SELECT c.problem_id, s.reward_model, COUNT(*) AS n, MAX(k.iteration) AS trained_in
                FROM candidates c JOIN problems p ON p.id = c.problem_id
                LEFT JOIN scores s ON s.candidate_id = c.id LEFT JOIN checkpoints k ON k.version = s.reward_model
                WHERE {selected} GROUP BY c.problem_id, s.reward_model
            ),
            ranking AS (
                SELECT problem_id, reward_model, trained_in FROM (
                    SELECT *, ROW_NUMBER() OVER (PARTITION BY problem_id
                        ORDER BY reward_model IS NULL, n DESC, trained_in DESC, reward_model DESC) AS position
                    FROM version_counts) WHERE position = 1
            )
            SELECT c.id, c.problem_id, p.language, p.split, c.origin, e.passed, c.mean_logprob, cl.label,
                   c.id IN (SELECT rejected_id FROM pairs WHERE run_id = :run AND kind = 'hard_negative') AS mined,
                   r.reward_model AS ranked_by, r.trained_in AS ranked_by_iteration, s.score AS reward
            FROM candidates c JOIN problems p ON p.id = c.problem_id JOIN ranking r ON r.problem_id = c.problem_id
            LEFT JOIN executions e ON e.candidate_id = c.id
            LEFT JOIN current_labels cl ON cl.candidate_id = c.id
            LEFT JOIN scores s ON s.candidate_id = c.id AND s.reward_model = r.reward_model
            WHERE {selected} ORDER BY c.problem_id, c.id
            """,
            params,
        )

    def hard_negative_counts(self, run_id: int) -> list[dict]:
        """Per iteration: hard-negative pairs mined, the distinct candidates they reject, and candidates
        whose current label is 'hard_negative'."""
        return self._named_query(
            """
            WITH mined AS (
                SELECT iteration, COUNT(*) AS mined_pairs, COUNT(DISTINCT rejected_id) AS mined_candidates
                FROM pairs WHERE run_id = :run AND kind = 'hard_negative' GROUP BY iteration
            ),
            labelled AS (
                SELECT c.iteration, COUNT(*) AS labeled_hard_negatives
                FROM candidates c JOIN current_labels cl ON cl.candidate_id = c.id
                WHERE c.run_id = :run AND cl.label = 'hard_negative' GROUP BY c.iteration
            ),
            iterations AS (SELECT iteration FROM mined UNION SELECT iteration FROM labelled)
            SELECT i.iteration, COALESCE(m.mined_pairs, 0) AS mined_pairs,
                   COALESCE(m.mined_candidates, 0) AS mined_candidates,
                   COALESCE(l.labeled_hard_negatives, 0) AS labeled_hard_negatives
            FROM iterations i LEFT JOIN mined m ON m.iteration = i.iteration
            LEFT JOIN labelled l ON l.iteration = i.iteration ORDER BY i.iteration
            """,
            {"run": run_id},
        )

    def reward_scores(self, run_id: int, iteration: int) -> list[dict]:
        """(reward_model, reward, passed) of every score of the iteration's executed candidates, under
        every reward-model version that scored them."""
        return self._query(
            "SELECT s.reward_model, s.score AS reward, e.passed FROM candidates c JOIN scores s ON s.candidate_id = c.id "
            "JOIN executions e ON e.candidate_id = c.id WHERE c.run_id = ? AND c.iteration = ? ORDER BY c.id",
            (run_id, iteration),
        )


def _problem_values(problem: Problem) -> tuple:
    return (
        problem.id, problem.language, problem.prompt, problem.tests, json.dumps(list(problem.stop_tokens)),
        problem.entry_point, problem.source, problem.split, int(problem.training_allowed), problem.reference,
    )


def _problem_from_row(row: sqlite3.Row) -> Problem:
    return Problem(
        id=row["id"], language=row["language"], prompt=row["prompt"], tests=row["tests"],
        stop_tokens=tuple(json.loads(row["stop_tokens_json"])), entry_point=row["entry_point"],
        source=row["source"], split=row["split"], training_allowed=bool(row["training_allowed"]),
        reference=row["reference"],
    )


def _write_jsonl(path: str | Path, rows: list[dict]) -> int:
    """Write atomically: a crash mid-export never leaves a half file where a full one was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    partial.replace(path)
    return len(rows)
