"""Where recoservice keeps its records: SQLite (one process) or PostgreSQL (any number).

``open_database(url, state_dir)`` picks the backend from ``--database``:

- ``sqlite:///PATH`` (default ``STATE_DIR/recoservice.db``): one file, WAL mode. Right for one
  process on one machine; WAL needs shared memory, so never on a network file system.
- ``postgresql://USER@HOST[:PORT]/DB[?sslmode=require]``: for several replicas. The password
  comes from ``PGPASSWORD``, ``PGPASSFILE`` or ``RECOSERVICE_DATABASE_PASSWORD_FILE``, never
  from the command line; with ``RECOSERVICE_DATABASE_AUTH=entra`` every new connection signs in
  with a Microsoft Entra token (``azure-identity``, the managed identity in
  ``AZURE_CLIENT_ID``), as Azure Database for PostgreSQL Flexible Server expects.

Both give the same thing to callers: ``db.transaction(write)`` yields a connection whose
``execute(sql, args)`` takes SQLite-style ``?`` placeholders and returns rows that index by
position and by column name. Write transactions are serialised across every process that
shares the database (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a transaction-scoped advisory
lock taken first), so "check, then insert" (one batch job per key, the next build id, claiming
a job) is atomic across replicas without per-call-site locking.

Schema versions are recorded (SQLite: ``PRAGMA user_version``; PostgreSQL: the
``schema_migrations`` table) and ``MIGRATIONS`` are applied on open, each in its own write
transaction, so a replica that starts while another migrates waits and then finds it done.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import unquote, urlsplit

#: A row of either backend: indexes by position and by column name (``sqlite3.Row`` or
#: ``_PgRow``), and unpacks like a tuple.
Row: TypeAlias = Any

# -- migrations -------------------------------------------------------------------------------

# Version 1 is the schema recoservice kept before versions were numbered here (SQLite
# user_version 0 or 1; batch_jobs was created by recoservice.batch on first use).
_V1 = """
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
CREATE TABLE IF NOT EXISTS batch_jobs (
    id TEXT PRIMARY KEY, operation_id TEXT NOT NULL, key_hash TEXT NOT NULL,
    requestinfo TEXT NOT NULL, created_at TEXT NOT NULL, started_at TEXT, ended_at TEXT);
"""

# Version 2: operations are leased by the replica that runs them (see recoservice.state).
_V2 = """
ALTER TABLE operations ADD COLUMN owner TEXT;
ALTER TABLE operations ADD COLUMN lease_until TEXT;
CREATE INDEX IF NOT EXISTS operations_status ON operations (status);
CREATE INDEX IF NOT EXISTS batch_jobs_key ON batch_jobs (key_hash, ended_at);
"""


def _hash_keys(conn: Any) -> None:
    """Versions before 1 kept subscription keys in ``operations.key``: keep their hashes."""
    from recoservice.state import key_hash

    for row in conn.execute("SELECT DISTINCT key FROM operations").fetchall():
        conn.execute("UPDATE operations SET key = ? WHERE key = ?", (key_hash(row[0]), row[0]))


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str
    then: Callable[[Any], None] | None = None


MIGRATIONS = (
    Migration(1, "models, catalog, usage, builds, operations, batch jobs; hashed keys",
              _V1, _hash_keys),
    Migration(2, "operation leases (owner, lease_until)", _V2),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def _statements(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]


def _pg_ddl(sql: str) -> str:
    """SQLite DDL as PostgreSQL: 64-bit integers, and byte-order text comparison (SQLite's
    BINARY collation) whatever the server's locale, so ORDER BY agrees across backends."""
    sql = re.sub(r"\bINTEGER\b", "BIGINT", sql)
    return re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', sql)


# -- the two backends -------------------------------------------------------------------------

class Database:
    """The interface both backends give: transactions, one-statement reads, migrations."""

    url: str
    #: Several processes may share it (leases matter; nothing is "ours" at start).
    shared: bool

    def transaction(self, write: bool, serialized: bool = True) -> Any:  # pragma: no cover
        """A transaction; ``serialized=False`` (writes that touch only rows they name, such
        as lease renewals) skips the writers' lock where the backend allows."""
        raise NotImplementedError

    def read_one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:  # pragma: no cover
        raise NotImplementedError

    def schema_version(self) -> int:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:
        pass


class _Nesting:
    """Per-thread transaction depth: nested ``transaction()`` joins the outer one."""

    def __init__(self) -> None:
        self._local = threading.local()

    @property
    def depth(self) -> int:
        return getattr(self._local, "depth", 0)

    @depth.setter
    def depth(self, value: int) -> None:
        self._local.depth = value


class SqliteDatabase(Database):
    """One SQLite file in WAL mode; a connection per thread."""

    shared = False

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._local = threading.local()
        self._nesting = _Nesting()
        self._migrate()

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=60000")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self, write: bool = True,
                    serialized: bool = True) -> Iterator[sqlite3.Connection]:
        """Write transactions start IMMEDIATE so two writers never deadlock on upgrade; read
        ones are deferred and read a WAL snapshot without waiting for a writer."""
        conn = self._connection()
        outer = self._nesting.depth == 0
        if outer:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        self._nesting.depth += 1
        try:
            yield conn
        except BaseException:
            self._nesting.depth -= 1
            if outer:
                conn.execute("ROLLBACK")
            raise
        self._nesting.depth -= 1
        if outer:
            conn.execute("COMMIT")

    def read_one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        # A lone statement is its own snapshot in autocommit mode: the cheapest read.
        return self._connection().execute(sql, args).fetchone()

    def schema_version(self) -> int:
        return int(self._connection().execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        for migration in MIGRATIONS:
            with self.transaction(write=True) as conn:
                if int(conn.execute("PRAGMA user_version").fetchone()[0]) >= migration.version:
                    continue
                for statement in _statements(migration.sql):
                    if statement.startswith("ALTER TABLE") and _sqlite_has_column(
                            conn, statement):
                        continue
                    conn.execute(statement)
                if migration.then is not None:
                    migration.then(conn)
                conn.execute(f"PRAGMA user_version = {migration.version}")


def _sqlite_has_column(conn: sqlite3.Connection, alter: str) -> bool:
    table, column = re.match(r"ALTER TABLE (\w+) ADD COLUMN (\w+)", alter).groups()  # type: ignore[union-attr]
    return any(r[1] == column for r in conn.execute(f"PRAGMA table_info({table})"))


class _PgRow(tuple):
    """A row that indexes by position and by column name, as ``sqlite3.Row`` does."""

    _index: dict[str, int]

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: Any) -> Callable[[Any], Any]:
    description = cursor.description
    if description is None:
        return tuple
    index = {column.name: n for n, column in enumerate(description)}

    def make(values: Any) -> _PgRow:
        row = _PgRow(values)
        row._index = index
        return row
    return make


_PG_SQL: dict[str, str] = {}


def _pg_sql(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled); memoised."""
    out = _PG_SQL.get(sql)
    if out is None:
        out = sql.replace("%", "%%").replace("?", "%s")
        if len(_PG_SQL) < 4096:
            _PG_SQL[sql] = out
    return out


class _PgConnection:
    """A psycopg connection that speaks the SQLite-style calls recoservice makes."""

    def __init__(self, conn: Any) -> None:
        self.raw = conn

    def execute(self, sql: str, args: Any = ()) -> Any:
        return self.raw.execute(_pg_sql(sql), tuple(args))

    def executemany(self, sql: str, rows: Any) -> None:
        with self.raw.cursor() as cur:
            cur.executemany(_pg_sql(sql), list(rows))


# The advisory lock that serialises writers (any 64-bit number; "reco" in ASCII).
_WRITE_LOCK = 0x7265636F
ENTRA_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"
POOL_SIZE = 16


class PostgresDatabase(Database):
    """A PostgreSQL database through a psycopg connection pool."""

    shared = True

    def __init__(self, url: str, *, auth: str | None = None,
                 password_file: Path | None = None) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.url = url
        self._nesting = _Nesting()
        self._local = threading.local()
        kwargs: dict[str, Any] = {"autocommit": True, "row_factory": _row_factory}
        connection_class: Any = psycopg.Connection
        if password_file is not None:
            kwargs["password"] = Path(password_file).read_text().strip()
        if auth == "entra":
            connection_class = _entra_connection_class()
        elif auth not in (None, "", "password"):
            raise ValueError("RECOSERVICE_DATABASE_AUTH must be 'password' or 'entra'")
        self._pool = ConnectionPool(url, min_size=1, max_size=POOL_SIZE, kwargs=kwargs,
                                    connection_class=connection_class, open=False,
                                    name="recoservice")
        self._pool.open(wait=True, timeout=60)
        self._migrate()

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def transaction(self, write: bool = True,
                    serialized: bool = True) -> Iterator[_PgConnection]:
        """A pooled connection in a transaction; a write one holds the writers' lock unless
        ``serialized=False``."""
        lock = write and serialized
        outer = self._nesting.depth == 0
        if not outer:
            conn: _PgConnection = self._local.conn
            if lock and not self._local.locked:
                conn.raw.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
                self._local.locked = True
            self._nesting.depth += 1
            try:
                yield conn
            finally:
                self._nesting.depth -= 1
            return
        with self._pool.connection() as raw:
            conn = _PgConnection(raw)
            self._local.conn, self._local.locked = conn, lock
            # READ COMMITTED: after the lock every statement sees what writers committed.
            raw.execute("BEGIN" if write else "BEGIN ISOLATION LEVEL REPEATABLE READ")
            self._nesting.depth = 1
            try:
                if lock:
                    raw.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
                yield conn
            except BaseException:
                raw.execute("ROLLBACK")
                raise
            else:
                raw.execute("COMMIT")
            finally:
                self._nesting.depth = 0
                self._local.conn = None

    def read_one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        if self._nesting.depth:  # inside a transaction: its connection, never a second one
            return self._local.conn.execute(sql, args).fetchone()
        with self._pool.connection() as raw:
            return raw.execute(_pg_sql(sql), tuple(args)).fetchone()

    def schema_version(self) -> int:
        row = self.read_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        return int(row[0])

    def _migrate(self) -> None:
        with self.transaction(write=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY"
                         " KEY, description TEXT NOT NULL, applied TEXT NOT NULL)")
        for migration in MIGRATIONS:
            with self.transaction(write=True) as conn:
                done = conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?",
                                    (migration.version,)).fetchone()
                if done is not None:
                    continue
                for statement in _statements(_pg_ddl(migration.sql)):
                    conn.execute(statement)
                if migration.then is not None:
                    migration.then(conn)
                conn.execute("INSERT INTO schema_migrations (version, description, applied) "
                             "VALUES (?, ?, ?)", (migration.version, migration.description,
                                                  datetime.now(UTC).isoformat()))


def _entra_connection_class() -> Any:
    """A psycopg connection class that signs in with a fresh Entra token each time."""
    import psycopg
    from azure.identity import DefaultAzureCredential

    credential = DefaultAzureCredential(
        managed_identity_client_id=os.environ.get("AZURE_CLIENT_ID") or None)

    class EntraConnection(psycopg.Connection):  # type: ignore[type-arg]
        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:  # type: ignore[override]
            # Tokens live about an hour; the pool opens connections long after start.
            kwargs["password"] = credential.get_token(ENTRA_SCOPE).token
            return super().connect(conninfo, **kwargs)

    return EntraConnection


def open_database(url: str | None, state_dir: Path) -> Database:
    """The database ``url`` names (``None``: ``sqlite:///STATE_DIR/recoservice.db``).

    PostgreSQL options come from the environment: ``RECOSERVICE_DATABASE_AUTH``
    (``password`` or ``entra``) and ``RECOSERVICE_DATABASE_PASSWORD_FILE``.
    """
    if not url:
        return SqliteDatabase(Path(state_dir) / "recoservice.db")
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
            raise ValueError("--database sqlite:///PATH needs a path (sqlite:////abs/path.db)")
        return SqliteDatabase(Path(unquote(url[len("sqlite:///"):])))
    if scheme in ("postgresql", "postgres"):
        password_file = os.environ.get("RECOSERVICE_DATABASE_PASSWORD_FILE")
        return PostgresDatabase(url, auth=os.environ.get("RECOSERVICE_DATABASE_AUTH"),
                                password_file=Path(password_file) if password_file else None)
    raise ValueError(f"--database must start with sqlite:/// or postgresql://, not {scheme!r}")


def url_has_password(url: str) -> bool:
    """Whether a database URL carries a password (refused on the command line)."""
    return urlsplit(url).password is not None or "password=" in url.lower()
