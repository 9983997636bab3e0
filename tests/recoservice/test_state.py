"""State: operations API shape, cancel, thread safety, restart recovery (in process)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from recoservice.database import SCHEMA_VERSION
from recoservice.state import LEASE_MESSAGE, RESTART_MESSAGE, State, key_hash


def test_operation_round_trip_has_the_api_shape(tmp_path: Path, state_factory):
    state = state_factory(tmp_path)
    op_id = state.create_operation("BatchScoring", "key-1", "http://x/y")

    state.update_operation(op_id, status="Running", percent_complete=50, message="half")
    before_result = state.get_operation(op_id)
    state.update_operation(op_id, status="Succeeded", result={"n": 3})
    after = state.get_operation(op_id)

    assert len(op_id) == 32 and int(op_id, 16) >= 0
    assert "result" not in before_result
    assert (before_result["status"], before_result["percentComplete"],
            before_result["message"]) == ("Running", 50, "half")
    assert after["result"] == {"n": 3}
    assert after["resourceLocation"] == "http://x/y"
    assert after["type"] == "BatchScoring"
    assert state.operation_owner(op_id) == key_hash("key-1")
    assert state.get_operation("missing") is None


def test_request_cancel_only_moves_active_operations(tmp_path: Path, state_factory):
    state = state_factory(tmp_path)
    running = state.create_operation("k", "key")
    state.update_operation(running, status="Running")
    done = state.create_operation("k", "key")
    state.update_operation(done, status="Succeeded")

    assert state.request_cancel(running) is True
    assert state.is_cancel_requested(running) is True
    assert state.get_operation(running)["status"] == "Cancelling"
    assert state.request_cancel(done) is False
    assert state.is_cancel_requested(done) is False
    assert state.request_cancel("unknown") is False


@pytest.mark.sqlite_only
def test_restart_marks_active_operations_failed(tmp_path: Path, state_factory):
    state = state_factory(tmp_path)
    ids = {status: state.create_operation("k", "key") for status in
           ("NotStarted", "Running", "Cancelling", "Succeeded")}
    for status, op_id in ids.items():
        state.update_operation(op_id, status=status)

    restarted = state_factory(tmp_path)

    statuses = {s: restarted.get_operation(i)["status"] for s, i in ids.items()}
    assert statuses == {"NotStarted": "Failed", "Running": "Failed", "Cancelling": "Failed",
                        "Succeeded": "Succeeded"}
    assert restarted.get_operation(ids["Running"])["message"] == RESTART_MESSAGE


def test_threads_update_operations_without_losing_writes(tmp_path: Path, state_factory):
    state = state_factory(tmp_path)
    op_ids = [state.create_operation("k", "key") for _ in range(8)]

    def work(op_id: str) -> None:
        for percent in range(1, 51):
            state.update_operation(op_id, percent_complete=percent)
            with state.db() as conn:   # nested use joins the same transaction
                with state.db() as inner:
                    inner.execute("SELECT 1")
                conn.execute("SELECT 1")

    threads = [threading.Thread(target=work, args=(op_id,)) for op_id in op_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [state.get_operation(op_id)["percentComplete"] for op_id in op_ids] == [50] * 8


def test_failed_transaction_rolls_back(tmp_path: Path, state_factory):
    state = state_factory(tmp_path)
    op_id = state.create_operation("k", "key")

    try:
        with state.db() as conn:
            conn.execute("UPDATE operations SET status = 'Running' WHERE id = ?", (op_id,))
            raise RuntimeError("boom")
    except RuntimeError:
        pass

    assert state.get_operation(op_id)["status"] == "NotStarted"


# ---------------------------------------------------------------------- schema, claims, leases

# The schema recoservice kept before migrations were numbered (PRAGMA user_version 1; the
# batch_jobs table was created by recoservice.batch on first use).
_UNNUMBERED_SCHEMA = """
CREATE TABLE models (id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL
    DEFAULT '', created TEXT NOT NULL, active_build_id INTEGER);
CREATE TABLE catalog_items (model_id TEXT NOT NULL, seq INTEGER NOT NULL, item_id TEXT NOT NULL,
    name TEXT NOT NULL, category TEXT NOT NULL DEFAULT '', description TEXT NOT NULL DEFAULT '',
    features TEXT NOT NULL DEFAULT '[]', metadata TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (model_id, item_id));
CREATE INDEX catalog_seq ON catalog_items (model_id, seq);
CREATE TABLE catalog_meta (model_id TEXT PRIMARY KEY, display_name TEXT NOT NULL,
    modified TEXT NOT NULL);
CREATE TABLE usage_files (id TEXT PRIMARY KEY, model_id TEXT NOT NULL, display_name TEXT NOT
    NULL, created TEXT NOT NULL, size_bytes INTEGER NOT NULL, imported INTEGER NOT NULL);
CREATE TABLE builds (id INTEGER PRIMARY KEY, model_id TEXT NOT NULL, description TEXT NOT NULL
    DEFAULT '', type TEXT NOT NULL, status TEXT NOT NULL, status_message TEXT NOT NULL DEFAULT
    '', params TEXT NOT NULL, set_active INTEGER NOT NULL, operation_id TEXT, start_time TEXT,
    end_time TEXT, modified TEXT NOT NULL, path TEXT);
CREATE TABLE operations (id TEXT PRIMARY KEY, key TEXT NOT NULL, kind TEXT NOT NULL, status
    TEXT NOT NULL, percent INTEGER NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL, last_action TEXT NOT NULL, resource_location TEXT, result TEXT);
CREATE TABLE batch_jobs (id TEXT PRIMARY KEY, operation_id TEXT NOT NULL, key_hash TEXT NOT
    NULL, requestinfo TEXT NOT NULL, created_at TEXT NOT NULL, started_at TEXT, ended_at TEXT);
INSERT INTO models VALUES ('m1', 'old', 'kept', '2026-01-01T00:00:00.000Z', 1000001);
INSERT INTO builds VALUES (1000001, 'm1', '', 'Sar', 'Succeeded', '', '{}', 1, 'op1', NULL,
    NULL, '2026-01-01T00:00:00.000Z', NULL);
INSERT INTO operations VALUES ('op1', 'HASH', 'BuildModel', 'Succeeded', 100, 'done',
    '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', NULL, '{"buildId": 1000001}');
INSERT INTO batch_jobs VALUES ('j1', 'op1', 'HASH', '{}', '2026-01-01T00:00:00.000Z', NULL,
    '2026-01-01T00:00:01.000Z');
PRAGMA user_version = 1;
"""


@pytest.mark.sqlite_only
def test_a_database_of_the_unnumbered_schema_opens_and_migrates(tmp_path: Path):
    db = sqlite3.connect(tmp_path / "recoservice.db")
    db.executescript(_UNNUMBERED_SCHEMA.replace("HASH", key_hash("key")))
    db.close()

    state = State(tmp_path)
    with state.db(write=False) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(operations)")]
    op = state.get_operation("op1")

    assert state.database.schema_version() == SCHEMA_VERSION == 2
    assert {"owner", "lease_until"} <= set(columns)
    assert (op["status"], op["result"]) == ("Succeeded", {"buildId": 1000001})
    assert state.operation_owner("op1") == key_hash("key")
    assert state.get_model("m1")["activeBuildId"] == 1000001
    state.close()


def test_migrations_are_recorded_and_applied_once(tmp_path: Path, state_factory):
    first = state_factory(tmp_path)
    op_id = first.create_operation("k", "key")
    first.update_operation(op_id, status="Succeeded")

    again = state_factory(tmp_path)  # a second replica, or a restart: nothing to apply

    assert first.database.schema_version() == again.database.schema_version() == SCHEMA_VERSION
    assert again.get_operation(op_id)["status"] == "Succeeded"


def test_only_one_state_claims_an_operation(tmp_path: Path, state_factory):
    one, other = state_factory(tmp_path), state_factory(tmp_path)
    op_id = one.create_operation("k", "key")

    claims = [one.claim(op_id), other.claim(op_id), one.claim(op_id)]

    assert claims == [True, False, False]
    assert one.get_operation(op_id)["status"] == "Running"


def test_an_expired_lease_fails_the_operation_its_build_and_its_job(tmp_path: Path,
                                                                    state_factory):
    dead = state_factory(tmp_path, lease_seconds=0.05)
    alive = state_factory(tmp_path, lease_seconds=60)
    op_id = dead.create_operation("BuildModel", "key")
    dead.claim(op_id)
    kept = alive.create_operation("BuildModel", "key")
    alive.claim(kept)
    with dead.db() as conn:
        conn.execute("INSERT INTO builds (id, model_id, type, status, params, set_active, "
                     "operation_id, modified) VALUES (5, 'm', 'Sar', 'Running', '{}', 0, ?, "
                     "'2026-01-01T00:00:00.000Z')", (op_id,))
        conn.execute("INSERT INTO batch_jobs (id, operation_id, key_hash, requestinfo, "
                     "created_at) VALUES ('j', ?, 'h', '{}', '2026-01-01T00:00:00.000Z')",
                     (op_id,))
    dead.close()  # stops its heartbeat: as if its process died
    time.sleep(0.2)

    expired = alive.expire_leases()

    with alive.db(write=False) as conn:
        build = conn.execute("SELECT status, status_message FROM builds WHERE id = 5").fetchone()
        ended = conn.execute("SELECT ended_at FROM batch_jobs WHERE id = 'j'").fetchone()[0]
    assert expired == 1
    assert alive.get_operation(op_id)["status"] == "Failed"
    assert alive.get_operation(op_id)["message"] == LEASE_MESSAGE
    assert (build[0], build[1]) == ("Failed", LEASE_MESSAGE)
    assert ended is not None
    assert alive.get_operation(kept)["status"] == "Running"


def test_a_stopping_state_fails_only_its_own_active_operations(tmp_path: Path, state_factory):
    leaving, staying = state_factory(tmp_path), state_factory(tmp_path)
    mine = leaving.create_operation("k", "key")
    theirs = staying.create_operation("k", "key")

    released = leaving.release()

    assert released == 1
    assert staying.get_operation(mine)["message"] == RESTART_MESSAGE
    assert staying.get_operation(theirs)["status"] == "NotStarted"


@pytest.mark.postgresql_only
def test_lease_renewals_do_not_wait_for_a_long_write(tmp_path: Path, state_factory):
    busy, other = state_factory(tmp_path), state_factory(tmp_path)
    op_id = other.create_operation("k", "key")
    holding, release = threading.Event(), threading.Event()

    def long_write() -> None:
        with busy.db():  # holds the writers' lock, as a big catalog import does
            holding.set()
            release.wait(10)

    writer = threading.Thread(target=long_write)
    writer.start()
    holding.wait(10)
    started = time.monotonic()
    renewed = other.renew_leases()
    took = time.monotonic() - started
    release.set()
    writer.join()

    assert renewed == 1 and op_id
    assert took < 2


@pytest.mark.postgresql_only
def test_entra_sign_in_uses_a_token_from_the_identity_as_the_password(
        tmp_path: Path, databases, monkeypatch: pytest.MonkeyPatch):
    # No Entra ID here: a stand-in credential hands out the server's password as the "token",
    # so the real server proves the token is what signs in.
    import azure.identity

    from recoservice.database import ENTRA_SCOPE, PostgresDatabase

    password = databases.server.extra["password"]
    asked: list[tuple[str, str | None]] = []

    class Token:
        token = password

    class FakeCredential:
        def __init__(self, managed_identity_client_id: str | None = None) -> None:
            self.client_id = managed_identity_client_id

        def get_token(self, scope: str) -> Token:
            asked.append((scope, self.client_id))
            return Token()

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", FakeCredential)
    monkeypatch.setenv("AZURE_CLIENT_ID", "client-1")
    monkeypatch.delenv("PGPASSWORD")

    db = PostgresDatabase(databases.url_for(tmp_path), auth="entra")
    version = db.schema_version()
    db.close()

    assert version == SCHEMA_VERSION
    assert asked and set(asked) == {(ENTRA_SCOPE, "client-1")}
