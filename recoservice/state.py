"""Durable state of recoservice: one SQLite database under ``--state-dir`` plus model files.

Tables: ``models``, ``catalog_items``, ``catalog_meta``, ``usage_files``, ``builds``,
``operations`` (other modules may add their own, e.g. ``batch_jobs``). Big arrays are ``.npz``
files: usage events under ``<state-dir>/usage/``, built SAR models under
``<state-dir>/builds/``. A restarted service keeps all of it; operations and builds that were
still in flight are marked ``Failed`` at start, because the thread that ran them died with the
old process.

The ``key`` column of ``operations`` holds the SHA-256 of the owner's subscription key, never
the key (``key_hash``); rows written by versions that kept the key are hashed at start.

Thread safety: every thread gets its own connection (``db()``); SQLite in WAL mode serialises
writers and a generous busy timeout makes them wait instead of failing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESTART_MESSAGE = "the service restarted while this operation was running"
ACTIVE_STATUSES = ("NotStarted", "Running", "Cancelling")

log = logging.getLogger("recoservice")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL, active_build_id INTEGER);
CREATE TABLE IF NOT EXISTS catalog_items (
    model_id TEXT NOT NULL, seq INTEGER NOT NULL, item_id TEXT NOT NULL, name TEXT NOT NULL,
    category TEXT NOT NULL DEFAULT '', description TEXT NOT NULL DEFAULT '',
    features TEXT NOT NULL DEFAULT '[]', metadata TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (model_id, item_id));
CREATE INDEX IF NOT EXISTS catalog_seq ON catalog_items (model_id, seq);
CREATE TABLE IF NOT EXISTS catalog_meta (
    model_id TEXT PRIMARY KEY, display_name TEXT NOT NULL, modified TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS usage_files (
    id TEXT PRIMARY KEY, model_id TEXT NOT NULL, display_name TEXT NOT NULL,
    created TEXT NOT NULL, size_bytes INTEGER NOT NULL, imported INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS builds (
    id INTEGER PRIMARY KEY, model_id TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',
    type TEXT NOT NULL, status TEXT NOT NULL, status_message TEXT NOT NULL DEFAULT '',
    params TEXT NOT NULL, set_active INTEGER NOT NULL, operation_id TEXT,
    start_time TEXT, end_time TEXT, modified TEXT NOT NULL, path TEXT);
CREATE TABLE IF NOT EXISTS operations (
    id TEXT PRIMARY KEY, key TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,
    percent INTEGER NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL, last_action TEXT NOT NULL, resource_location TEXT, result TEXT);
"""


# PRAGMA user_version: 1 = operations.key holds key hashes.
_SCHEMA_VERSION = 1


def key_hash(key: str) -> str:
    """What the state keeps of a subscription key (a secret): its SHA-256, in hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def now_iso() -> str:
    """Current time, ISO-8601 UTC with milliseconds and a ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class State:
    """The service's database and files.

    Parameters
    ----------
    state_dir
        Folder for ``recoservice.db`` and ``builds/``; created when missing.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.builds_dir = self.state_dir / "builds"
        self.builds_dir.mkdir(exist_ok=True)
        self.usage_dir = self.state_dir / "usage"
        self.usage_dir.mkdir(exist_ok=True)
        self.path = self.state_dir / "recoservice.db"
        self._local = threading.local()
        # Write transactions committed so far: a reader that saw the same count before and
        # after may reuse what it read (see Scorer.resolve_build).
        self.writes = 0
        self._writes_lock = threading.Lock()
        # executescript manages its own transaction, so it runs outside db().
        self._connection().executescript(_SCHEMA)
        self._hash_stored_keys()
        self._fail_interrupted()

    # -- connections ---------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=60000")
            self._local.conn = conn
            self._local.depth = 0
        return conn

    @contextmanager
    def db(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """This thread's connection inside a transaction; commits on exit, rolls back on error.

        Nested uses on one thread join the outer transaction (only the outermost commits).
        ``write=False`` starts a deferred (read) transaction: in WAL mode it reads a snapshot
        without waiting for a writer, so status polls and scoring never queue behind a long
        import. Write transactions start IMMEDIATE so two writers never deadlock on upgrade.
        """
        conn = self._connection()
        outer = self._local.depth == 0
        if outer:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        self._local.depth += 1
        try:
            yield conn
        except BaseException:
            self._local.depth -= 1
            if outer:
                conn.execute("ROLLBACK")
            raise
        self._local.depth -= 1
        if outer:
            conn.execute("COMMIT")
            if write:
                with self._writes_lock:  # += from two threads could lose one
                    self.writes += 1

    def read_one(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        """One row of one SELECT, without BEGIN/COMMIT around it (a lone statement is its
        own snapshot in autocommit mode): the cheapest read, for per-request look-ups."""
        return self._connection().execute(sql, args).fetchone()

    # -- operations ----------------------------------------------------------------------------

    def create_operation(self, kind: str, key: str, resource_location: str | None = None) -> str:
        """Record a new ``NotStarted`` operation of ``kind`` owned by ``key``; return its id.

        Only the key's hash is stored (see ``key_hash``).
        """
        op_id = uuid.uuid4().hex
        stamp = now_iso()
        with self.db() as conn:
            conn.execute(
                "INSERT INTO operations (id, key, kind, status, percent, message, created, "
                "last_action, resource_location) VALUES (?, ?, ?, 'NotStarted', 0, '', ?, ?, ?)",
                (op_id, key_hash(key), kind, stamp, stamp, resource_location))
        return op_id

    def update_operation(self, op_id: str, *, status: str | None = None,
                         percent_complete: int | None = None, message: str | None = None,
                         result: Any = None, resource_location: str | None = None) -> None:
        """Change the given fields of an operation (``None`` leaves a field as it is)."""
        sets, args = ["last_action = ?"], [now_iso()]
        for column, value in (("status", status), ("percent", percent_complete),
                              ("message", message), ("resource_location", resource_location)):
            if value is not None:
                sets.append(f"{column} = ?")
                args.append(value)
        if result is not None:
            sets.append("result = ?")
            args.append(json.dumps(result))
        with self.db() as conn:
            conn.execute(f"UPDATE operations SET {', '.join(sets)} WHERE id = ?",
                         (*args, op_id))

    def get_operation(self, op_id: str) -> dict | None:
        """The operation as ``GET /operations/{id}`` shows it, or ``None`` when unknown."""
        with self.db(write=False) as conn:
            row = conn.execute("SELECT * FROM operations WHERE id = ?", (op_id,)).fetchone()
        if row is None:
            return None
        out: dict[str, Any] = {
            "type": row["kind"],
            "status": row["status"],
            "createdDateTime": row["created"],
            "lastActionDateTime": row["last_action"],
            "percentComplete": row["percent"],
            "message": row["message"],
            "resourceLocation": row["resource_location"],
        }
        if row["result"] is not None:
            out["result"] = json.loads(row["result"])
        return out

    def operation_owner(self, op_id: str) -> str | None:
        """The ``key_hash`` of the key that owns the operation (``None`` when unknown)."""
        with self.db(write=False) as conn:
            row = conn.execute("SELECT key FROM operations WHERE id = ?", (op_id,)).fetchone()
        return None if row is None else str(row["key"])

    def request_cancel(self, op_id: str) -> bool:
        """Move a ``NotStarted``/``Running`` operation to ``Cancelling``.

        Returns ``True`` when it is (now or already) cancelling, ``False`` when it is terminal
        or unknown. The thread running it sees ``is_cancel_requested`` and ends it ``Cancelled``.
        """
        with self.db() as conn:
            cur = conn.execute(
                "UPDATE operations SET status = 'Cancelling', last_action = ? "
                "WHERE id = ? AND status IN ('NotStarted', 'Running')", (now_iso(), op_id))
            if cur.rowcount:
                return True
            row = conn.execute("SELECT status FROM operations WHERE id = ?", (op_id,)).fetchone()
        return row is not None and row["status"] == "Cancelling"

    def is_cancel_requested(self, op_id: str) -> bool:
        with self.db(write=False) as conn:
            row = conn.execute("SELECT status FROM operations WHERE id = ?", (op_id,)).fetchone()
        return row is not None and row["status"] == "Cancelling"

    # -- models ------------------------------------------------------------------------------

    def get_model(self, model_id: str) -> dict | None:
        """The model as ``GET /models/{id}`` shows it, or ``None`` when unknown."""
        with self.db(write=False) as conn:
            row = conn.execute("SELECT * FROM models WHERE id = ?", (model_id,)).fetchone()
        if row is None:
            return None
        return {"id": row["id"], "name": row["name"], "description": row["description"],
                "createdDateTime": row["created"], "activeBuildId": row["active_build_id"]}

    # -- builds --------------------------------------------------------------------------------

    def next_build_id(self, conn: sqlite3.Connection) -> int:
        """A new build id: 64-bit, increasing, never reused (call inside ``db()``)."""
        row = conn.execute("SELECT MAX(id) AS top FROM builds").fetchone()
        # Start high so ids look like the hosted service's (seven digits and up).
        return max(int(row["top"] or 0) + 1, 1_000_001)

    def build_path(self, model_id: str, build_id: int) -> Path:
        return self.builds_dir / f"{model_id}-{build_id}.sar.npz"

    def usage_path(self, model_id: str, file_id: str) -> Path:
        return self.usage_dir / f"{model_id}-{file_id}.npz"

    def ids_path(self, model_id: str, build_id: int) -> Path:
        return self.builds_dir / f"{model_id}-{build_id}.ids.npz"

    # -- start-up ------------------------------------------------------------------------------

    def _hash_stored_keys(self) -> None:
        """Replace the keys that older versions stored in ``operations`` by their hashes."""
        with self.db() as conn:
            if conn.execute("PRAGMA user_version").fetchone()[0] >= _SCHEMA_VERSION:
                return
            rows = conn.execute("SELECT DISTINCT key FROM operations").fetchall()
            conn.executemany("UPDATE operations SET key = ? WHERE key = ?",
                             [(key_hash(row["key"]), row["key"]) for row in rows])
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    def _fail_interrupted(self) -> None:
        stamp = now_iso()
        with self.db() as conn:
            cur = conn.execute(
                "UPDATE operations SET status = 'Failed', message = ?, last_action = ? "
                "WHERE status IN ('NotStarted', 'Running', 'Cancelling')",
                (RESTART_MESSAGE, stamp))
            conn.execute(
                "UPDATE builds SET status = 'Failed', status_message = ?, end_time = ?, "
                "modified = ? WHERE status IN ('NotStarted', 'Running', 'Cancelling')",
                (RESTART_MESSAGE, stamp, stamp))
        if cur.rowcount:
            log.warning(
                "%d operation(s) were running when the service stopped; marked Failed",
                cur.rowcount)
