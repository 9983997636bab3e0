"""SQLite state of the durable host: instances, histories, inboxes, pending work, receipts.

Everything that must survive a SIGKILL lives here. Each state change that the host makes is one
transaction (``Store.tx``), so a completion is recorded together with the removal of the work
item it completes: a crash either keeps both (the work is re-run) or neither.

Tables
------
instances  one row per orchestration instance (status, input, output, custom status, counters)
history    the history events of the current execution of an instance, in order
inbox      events waiting to be delivered to an instance in its next episode
work       scheduled activities and timers not completed yet
receipts   blob-trigger receipts (one per function, blob and ETag), including poison ones
meta       small key/value facts (the highest orchestration clock value handed out)
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL,
    input TEXT, output TEXT, custom_status TEXT, error TEXT,
    created REAL NOT NULL, updated REAL NOT NULL,
    parent_id TEXT, parent_execution INTEGER, parent_seq INTEGER,
    execution INTEGER NOT NULL DEFAULT 0, next_seq INTEGER NOT NULL DEFAULT 0,
    actions TEXT NOT NULL DEFAULT '[]', start_meta TEXT
);
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL, pos INTEGER NOT NULL, event TEXT NOT NULL,
    PRIMARY KEY (instance_id, pos)
);
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, instance_id TEXT NOT NULL,
    execution INTEGER NOT NULL, event TEXT NOT NULL, meta TEXT
);
CREATE TABLE IF NOT EXISTS work (
    id INTEGER PRIMARY KEY AUTOINCREMENT, instance_id TEXT NOT NULL,
    execution INTEGER NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL,
    name TEXT, input TEXT, due REAL, meta TEXT
);
CREATE TABLE IF NOT EXISTS receipts (
    function TEXT NOT NULL, container TEXT NOT NULL, blob TEXT NOT NULL, etag TEXT NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, updated REAL NOT NULL,
    PRIMARY KEY (function, container, blob, etag)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS inbox_by_instance ON inbox (instance_id, id);
CREATE INDEX IF NOT EXISTS work_by_kind ON work (kind, due);
"""

TERMINAL = ("Completed", "Failed", "Terminated")


class Store:
    """One SQLite connection shared by devhost's threads behind a lock.

    Parameters
    ----------
    path : Path
        The database file (created with its folder when missing).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # autocommit mode: transactions are explicit (BEGIN IMMEDIATE in ``tx``)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """Run a block as one transaction (committed on success, rolled back on error)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Read rows outside of a transaction."""
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key=?", (key,))
        return str(rows[0]["value"]) if rows else default

    # -- instances ---------------------------------------------------------------------------

    def instance(self, instance_id: str) -> sqlite3.Row | None:
        rows = self.query("SELECT * FROM instances WHERE id=?", (instance_id,))
        return rows[0] if rows else None

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        rows = self.query("SELECT event FROM history WHERE instance_id=? ORDER BY pos",
                          (instance_id,))
        return [json.loads(r["event"]) for r in rows]


def append_history(db: sqlite3.Connection, instance_id: str, events: list[dict[str, Any]]) -> None:
    """Append events to an instance's history inside the caller's transaction."""
    row = db.execute("SELECT COALESCE(MAX(pos), -1) AS p FROM history WHERE instance_id=?",
                     (instance_id,)).fetchone()
    pos = int(row["p"]) + 1
    for offset, event in enumerate(events):
        db.execute("INSERT INTO history (instance_id, pos, event) VALUES (?, ?, ?)",
                   (instance_id, pos + offset, json.dumps(event)))


def post_event(db: sqlite3.Connection, instance_id: str, execution: int, event: dict[str, Any],
               meta: dict[str, Any] | None = None) -> None:
    """Put an event in an instance's inbox inside the caller's transaction."""
    db.execute("INSERT INTO inbox (instance_id, execution, event, meta) VALUES (?, ?, ?, ?)",
               (instance_id, execution, json.dumps(event), json.dumps(meta) if meta else None))


def clear_instance(db: sqlite3.Connection, instance_id: str, keep_history: bool = False,
                   keep_inbox: bool = False) -> None:
    """Drop an instance's pending work (and inbox, history unless kept) in a transaction."""
    db.execute("DELETE FROM work WHERE instance_id=?", (instance_id,))
    if not keep_inbox:
        db.execute("DELETE FROM inbox WHERE instance_id=?", (instance_id,))
    if not keep_history:
        db.execute("DELETE FROM history WHERE instance_id=?", (instance_id,))
