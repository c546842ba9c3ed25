"""The store's plumbing: opening the database, its connections, transactions and the read-only reader.

A store is one SQLite file in WAL mode (readers never block the writer, nor it them). Every thread
gets its own connection, opened on first use. `transaction()` is one `BEGIN IMMEDIATE`: a crash or
`kill -9` leaves either all of a write or none of it, and a second process that writes at the same
time waits for the first (busy timeout) instead of failing.

Opening a store writable creates it, or upgrades it to this code's schema (schema.py). Opened with
`readonly=True` (or through `reader()`), its connections refuse every write (`PRAGMA query_only`) and
decode text that is not UTF-8 with U+FFFD instead of raising: for showing model and program output,
where one bad byte must not break a page. A read-only store opens only an existing store at this
code's schema version.

A file that is not a SQLite database, or a damaged one, is refused with a StoreError that says what
to do (check it with `PRAGMA integrity_check`, keep a copy at a named backup path, recover what is
readable) and changes nothing; `check()` runs SQLite's quick check for callers that must know before
they serve (the app).

Not covered here: the schema itself (schema.py), and any table's rows (the per-table modules, which
build on StoreCore).
"""
from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from lab.store.schema import SCHEMA_VERSION, apply_migrations


class StoreError(RuntimeError):
    """A write or read the store refuses; the message says why and what to do."""


DAMAGE = ("file is not a database", "malformed", "disk i/o error", "database corrupt")
"""SQLite's words for a file that is no store or a damaged one (not for a busy or read-only one)."""


def is_damage(error: sqlite3.DatabaseError) -> bool:
    return any(word in str(error).lower() for word in DAMAGE)


def damaged_store_error(path: Path, reason: object) -> StoreError:
    """What to do about a store SQLite cannot read (`reason`: its words, or the failed check's)."""
    backup = path.with_name(f"{path.name}.backup-{datetime.now():%Y%m%d-%H%M%S}")
    recovered = path.with_name(f"{path.stem}.recovered{path.suffix}")
    return StoreError(
        f"{path} cannot be read as the lab's store (SQLite: {reason}); nothing was changed. Check it with "
        f"`sqlite3 {path} 'PRAGMA integrity_check'`. Keep a copy first: `cp {path} {backup}`; then recover what "
        f"is readable with `sqlite3 {backup} .recover | sqlite3 {recovered}` and move {recovered.name} to "
        f"{path.name} (the sqlite3 shell's .recover needs its sqlite_dbpage table; where it says 'SQL logic "
        f"error', restore {path.name} from a backup instead), or start afresh in another directory with "
        f"--lab-dir NEW --create.")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _replacing_bad_utf8(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def connect(path: Path, busy_timeout_s: float, *, readonly: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) whose rows read by column name."""
    connection = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
    connection.row_factory = sqlite3.Row
    if readonly:
        connection.text_factory = _replacing_bad_utf8
        connection.execute("PRAGMA query_only = ON")
    else:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
    return connection


class StoreCore:
    """Open the store at `path`: writable (created or upgraded), or `readonly`. One connection per thread."""

    def __init__(self, path: str | Path, busy_timeout_s: float = 60.0, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._reader: Self | None = None
        try:
            if readonly:
                self._check_readable()
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._migrate()
        except sqlite3.DatabaseError as error:
            self.close()
            if not is_damage(error):
                raise
            raise damaged_store_error(self.path, error) from error

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use (and again after `close()`)."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = connect(self.path, self._busy_timeout_s, readonly=self.readonly)
            self._local.connection = connection
        return connection

    def close(self) -> None:
        """Close this thread's connection (a later read opens a new one)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reader(self) -> Self:
        """This store opened read-only (see the module docstring), one per store and made once; a
        read-only store is its own reader. The writable store's connections stay strict: every read
        method works on the reader, every write fails."""
        if self.readonly:
            return self
        if self._reader is None:
            self._reader = type(self)(self.path, self._busy_timeout_s, readonly=True)
        return self._reader

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

    def _query(self, sql: str, params: Iterable[Any] | Mapping[str, Any] = ()) -> list[Any]:
        """Rows as dicts (their TypedDict is the caller's return annotation); `params` positional
        (`?`) or named (`:name`)."""
        bound = params if isinstance(params, Mapping) else tuple(params)
        return [dict(row) for row in self.db.execute(sql, bound)]

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def integrity_check(self) -> str:
        return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])

    def check(self) -> None:
        """SQLite's quick check of every page: StoreError saying what to do unless it is 'ok'."""
        try:
            result = [row[0] for row in self.db.execute("PRAGMA quick_check(5)")]
        except sqlite3.DatabaseError as error:
            if not is_damage(error):
                raise
            raise damaged_store_error(self.path, error) from error
        if result != ["ok"]:
            raise damaged_store_error(self.path, "; ".join(result))

    def _migrate(self) -> None:
        with self.transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {version}, newer than this code knows "
                    f"({SCHEMA_VERSION}): upgrade the lab package or use another lab directory"
                )
            apply_migrations(db, version)

    def _check_readable(self) -> None:
        if not self.path.is_file():
            raise StoreError(f"no store at {self.path} to read: check the lab directory, or start a run there "
                             "(`python -m lab run`)")
        version = self.schema_version
        if version != SCHEMA_VERSION:
            self.close()
            raise StoreError(f"{self.path} has schema version {version}, this code reads version {SCHEMA_VERSION}: "
                             "open it writable once (any `python -m lab` command) to upgrade it, or upgrade the "
                             "lab package when it is newer")
