"""Durable state of recoservice: its records in a database, its arrays as artifact files.

Records (``models``, ``catalog_items``, ``catalog_meta``, ``usage_files``, ``builds``,
``operations``, ``batch_jobs``) live in the database ``--database`` names
(``recoservice.database``: SQLite by default, PostgreSQL for several replicas). Big arrays are
``.npz`` files: usage events (``usage/``) and built SAR models (``builds/``) under
``--state-dir``, and also in a blob container when ``--artifacts`` is given
(``recoservice.artifacts``), so that every replica can load every build.

An operation is leased by the replica that runs it: ``owner`` and ``lease_until`` columns,
renewed by a heartbeat thread every ``lease_seconds / 3``. Any replica's heartbeat marks an
active operation whose lease has run out ``Failed`` (its replica died with the thread that ran
it), with its build or batch job. With SQLite (one process by design) a restarted service
also marks every operation still in flight ``Failed`` at start.

The ``key`` column of ``operations`` holds the SHA-256 of the owner's subscription key, never
the key (``key_hash``); rows written by versions that kept the key are hashed by migration 1.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from recoservice.artifacts import Artifacts, LocalArtifacts
from recoservice.database import Database, open_database

RESTART_MESSAGE = "the service restarted while this operation was running"
LEASE_MESSAGE = ("the replica running this operation stopped renewing its lease "
                 "(it crashed or was stopped)")
ACTIVE_STATUSES = ("NotStarted", "Running", "Cancelling")
DEFAULT_LEASE_SECONDS = 30.0

log = logging.getLogger("recoservice")


def key_hash(key: str) -> str:
    """What the state keeps of a subscription key (a secret): its SHA-256, in hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def now_iso() -> str:
    """Current time, ISO-8601 UTC with milliseconds and a ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso_in(seconds: float) -> str:
    stamp = datetime.now(UTC) + timedelta(seconds=seconds)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class State:
    """The service's database and artifact files.

    Parameters
    ----------
    state_dir
        Folder for ``recoservice.db`` (the SQLite default), ``builds/`` and ``usage/``
        (with blob artifacts: the local cache); created when missing.
    database
        ``sqlite:///PATH`` or ``postgresql://...`` (``None``: ``STATE_DIR/recoservice.db``).
    artifacts
        Where builds and usage files are kept (``None``: the local folders only).
    lease_seconds
        How long an operation stays leased without a heartbeat from its replica.
    """

    def __init__(self, state_dir: Path, database: str | None = None,
                 artifacts: Artifacts | None = None,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.builds_dir = self.state_dir / "builds"
        self.builds_dir.mkdir(exist_ok=True)
        self.usage_dir = self.state_dir / "usage"
        self.usage_dir.mkdir(exist_ok=True)
        self.database: Database = open_database(database, self.state_dir)
        self.path = getattr(self.database, "path", None)
        self.artifacts: Artifacts = artifacts or LocalArtifacts()
        self.replica = uuid.uuid4().hex
        self.lease_seconds = float(lease_seconds)
        # Write transactions committed so far: a reader that saw the same count before and
        # after may reuse what it read (see Scorer.resolve_build). Only meaningful when this
        # process is the only writer (``cache_reads``).
        self.writes = 0
        self.cache_reads = not self.database.shared
        self._writes_lock = threading.Lock()
        self._stopping = threading.Event()
        if not self.database.shared:
            self._fail_interrupted()
        self.expire_leases()
        self._heartbeat = threading.Thread(target=self._beat, name="recoservice-lease",
                                           daemon=True)
        self._heartbeat.start()

    def release(self) -> int:
        """Mark this replica's active operations ``Failed`` (it is stopping and their threads
        stop with it), so that nobody waits for their leases to run out; return how many."""
        stamp = now_iso()
        with self.db() as conn:
            rows = conn.execute(
                "SELECT id FROM operations WHERE owner = ? AND status IN ('NotStarted', "
                "'Running', 'Cancelling')", (self.replica,)).fetchall()
            for row in rows:
                self._fail(conn, row[0], RESTART_MESSAGE, stamp)
        if rows:
            log.warning("%d operation(s) were running at shutdown; marked Failed", len(rows))
        return len(rows)

    def close(self) -> None:
        """Stop the heartbeat and close the database (tests; a process just exits)."""
        self._stopping.set()
        self._heartbeat.join(timeout=10)
        self.database.close()

    # -- connections ---------------------------------------------------------------------------

    @contextmanager
    def db(self, write: bool = True, serialized: bool = True) -> Iterator[Any]:
        """A connection inside a transaction; commits on exit, rolls back on error.

        Nested uses on one thread join the outer transaction (only the outermost commits).
        ``write=False`` reads a snapshot without waiting for a writer, so status polls and
        scoring never queue behind a long import. Write transactions are serialised across
        every process sharing the database (see ``recoservice.database``), except with
        ``serialized=False``, for updates that need no check-then-write atomicity.
        """
        with self.database.transaction(write, serialized) as conn:
            yield conn
        if write:
            with self._writes_lock:  # += from two threads could lose one
                self.writes += 1

    def read_one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        """One row of one SELECT, outside any transaction: the cheapest read, for
        per-request look-ups."""
        return self.database.read_one(sql, args)

    # -- leases --------------------------------------------------------------------------------

    def claim(self, op_id: str) -> bool:
        """Move a ``NotStarted`` operation to ``Running``, leased by this replica.

        ``False`` when it is not ``NotStarted`` any more (cancelled, or claimed elsewhere):
        exactly one caller across replicas gets ``True``.
        """
        with self.db() as conn:
            cur = conn.execute(
                "UPDATE operations SET status = 'Running', owner = ?, lease_until = ?, "
                "last_action = ? WHERE id = ? AND status = 'NotStarted'",
                (self.replica, _iso_in(self.lease_seconds), now_iso(), op_id))
            return bool(cur.rowcount)

    def renew_leases(self) -> int:
        """Extend the leases of this replica's active operations; return how many.

        Not behind the writers' lock: a long import on another replica must not hold renewals
        back until the leases run out.
        """
        with self.db(serialized=False) as conn:
            cur = conn.execute(
                "UPDATE operations SET lease_until = ? WHERE owner = ? AND status IN "
                "('NotStarted', 'Running', 'Cancelling')",
                (_iso_in(self.lease_seconds), self.replica))
            return int(cur.rowcount)

    def expire_leases(self) -> int:
        """Mark active operations whose lease ran out ``Failed``, with their build rows and
        batch job rows; return how many.

        Not behind the writers' lock either (see ``renew_leases``): one UPDATE picks the expired
        rows, and a renewal racing it is re-checked by the database's row lock.
        """
        stamp = now_iso()
        with self.db(serialized=False) as conn:
            rows = conn.execute(
                "UPDATE operations SET status = 'Failed', message = ?, last_action = ? "
                "WHERE status IN ('NotStarted', 'Running', 'Cancelling') AND lease_until IS "
                "NOT NULL AND lease_until < ? RETURNING id",
                (LEASE_MESSAGE, stamp, stamp)).fetchall()
            for row in rows:
                self._fail(conn, row[0], LEASE_MESSAGE, stamp)
        if rows:
            log.warning("%d operation(s) lost their replica (lease expired); marked Failed",
                        len(rows))
        return len(rows)

    def _fail(self, conn: Any, op_id: str, message: str, stamp: str) -> None:
        conn.execute("UPDATE operations SET status = 'Failed', message = ?, last_action = ? "
                     "WHERE id = ?", (message, stamp, op_id))
        conn.execute("UPDATE builds SET status = 'Failed', status_message = ?, end_time = ?, "
                     "modified = ? WHERE operation_id = ? AND status IN ('NotStarted', "
                     "'Running', 'Cancelling')", (message, stamp, stamp, op_id))
        conn.execute("UPDATE batch_jobs SET ended_at = ? WHERE operation_id = ? AND "
                     "ended_at IS NULL", (stamp, op_id))

    def _beat(self) -> None:
        while not self._stopping.wait(self.lease_seconds / 3):
            try:
                self.renew_leases()
                self.expire_leases()
            except Exception:  # a database hiccup must not end the heartbeat for good
                log.exception("lease heartbeat failed; retrying")

    # -- operations ----------------------------------------------------------------------------

    def create_operation(self, kind: str, key: str, resource_location: str | None = None) -> str:
        """Record a new ``NotStarted`` operation of ``kind`` owned by ``key``; return its id.

        Only the key's hash is stored (see ``key_hash``). This replica holds its lease: it
        runs it (see ``claim``).
        """
        op_id = uuid.uuid4().hex
        stamp = now_iso()
        with self.db() as conn:
            conn.execute(
                "INSERT INTO operations (id, key, kind, status, percent, message, created, "
                "last_action, resource_location, owner, lease_until) "
                "VALUES (?, ?, ?, 'NotStarted', 0, '', ?, ?, ?, ?, ?)",
                (op_id, key_hash(key), kind, stamp, stamp, resource_location, self.replica,
                 _iso_in(self.lease_seconds)))
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

    def next_build_id(self, conn: Any) -> int:
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

    # -- artifacts (the files above, kept where every replica finds them) ----------------------

    def _artifact_name(self, path: Path) -> str:
        return path.relative_to(self.state_dir).as_posix()

    def publish(self, path: Path) -> None:
        """Keep a file just written under the state folder as an artifact (see
        ``recoservice.artifacts``); call before committing the record that names it."""
        self.artifacts.publish(self._artifact_name(path), path)

    def fetch(self, path: Path) -> Path:
        """``path``, downloaded first when another replica wrote it; ``FileNotFoundError``
        when it exists nowhere."""
        return self.artifacts.fetch(self._artifact_name(path), path)

    def has_artifact(self, path: Path) -> bool:
        try:
            self.fetch(path)
        except FileNotFoundError:
            return False
        return True

    def discard(self, path: Path) -> None:
        """Delete an artifact, here and in the artifact store."""
        path.unlink(missing_ok=True)
        self.artifacts.delete(self._artifact_name(path))

    # -- start-up ------------------------------------------------------------------------------

    def _fail_interrupted(self) -> None:
        """One process per SQLite file: whatever is still in flight at start died with the
        previous process."""
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
