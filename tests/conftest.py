"""Shared fixtures: real Azurite and a real recoservice, started once per test session.

Nothing here is mocked. If a service cannot start, the fixture raises with the service's log,
so the tests fail loudly with the reason instead of being skipped.

``RECOSERVICE_TEST_DATABASE=postgresql`` runs every recoservice of the session on a real
PostgreSQL server that the session starts (Debian's ``postgresql`` package; a missing server
fails the session's recoservice fixtures) and stops; each recoservice state folder gets its own
database, so a restarted service (same folder) finds its records again. Unset or ``sqlite``:
SQLite files, as in production's default.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from devhost.services import Service, start_azurite, start_postgres, start_recoservice

TEST_KEY = "test-key-" + uuid.uuid4().hex[:8]
OTHER_KEY = "other-key-" + uuid.uuid4().hex[:8]
# The key of recoservice's fault routes (Recoservice-Admin-Key); it reaches the service in a
# file, never on its command line.
ADMIN_KEY = "admin-key-" + uuid.uuid4().hex[:8]
ADMIN_HEADER = "Recoservice-Admin-Key"


@dataclass
class Reco:
    """A running recoservice: where it is and how to call it."""

    service: Service
    base_url: str
    key: str
    demo_model_id: str           # "demo": the Microsoft Store catalog, synthetic usage
    synthetic_model_id: str = ""  # "synthetic": recoservice.synth.generate, SYN-000000 ...
    admin_key: str = ADMIN_KEY

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Ocp-Apim-Subscription-Key": key or self.key}

    def admin_headers(self) -> dict[str, str]:
        """Headers of the fault routes: a subscription key and the admin key."""
        return {**self.headers(), ADMIN_HEADER: self.admin_key}

    def set_faults(self, rules: list[dict]) -> None:
        """Install fault rules (replacing any), see recoservice/faults.py."""
        resp = requests.put(f"{self.base_url}/admin/faults", json={"rules": rules},
                            headers=self.admin_headers(), timeout=10)
        resp.raise_for_status()

    def faults(self) -> list[dict]:
        """The fault rules that are left (counts decremented as they fire)."""
        resp = requests.get(f"{self.base_url}/admin/faults", headers=self.admin_headers(),
                            timeout=10)
        resp.raise_for_status()
        return resp.json()["rules"]

    def clear_faults(self) -> None:
        resp = requests.delete(f"{self.base_url}/admin/faults", headers=self.admin_headers(),
                               timeout=10)
        resp.raise_for_status()


TEST_DATABASE = os.environ.get("RECOSERVICE_TEST_DATABASE", "sqlite").strip().lower()
if TEST_DATABASE not in ("sqlite", "postgresql"):
    raise RuntimeError("RECOSERVICE_TEST_DATABASE must be sqlite or postgresql")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the tests of the other backend: with PostgreSQL those that open
    recoservice's SQLite file themselves, with SQLite those that need a shared database."""
    other = "sqlite_only" if TEST_DATABASE == "postgresql" else "postgresql_only"
    kept = [item for item in items if item.get_closest_marker(other) is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


class Databases:
    """Where the session's recoservice states live: ``None`` (SQLite in the state folder) or
    one PostgreSQL database per state folder on the session's server."""

    def __init__(self, server: Service | None) -> None:
        self.server = server
        self._made: set[str] = set()

    @property
    def shared(self) -> bool:
        return self.server is not None

    def url_for(self, state_dir: Path) -> str | None:
        """The ``--database`` of a state folder (created on first use)."""
        if self.server is None:
            return None
        import psycopg

        name = "r" + hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:20]
        if name not in self._made:
            with psycopg.connect(self.server.extra["url"], autocommit=True,
                                 password=self.server.extra["password"]) as conn:
                if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                (name,)).fetchone() is None:
                    conn.execute(f'CREATE DATABASE "{name}"')
            self._made.add(name)
        return self.server.extra["url"].rsplit("/", 1)[0] + "/" + name

    def env(self) -> dict[str, str]:
        """Environment of a recoservice process (the password never goes on argv)."""
        return {} if self.server is None else {"PGPASSWORD": self.server.extra["password"]}


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    """The session's recoservice databases (see the module docstring)."""
    if TEST_DATABASE == "sqlite":
        yield Databases(None)
        return
    server = start_postgres(tmp_path_factory.mktemp("postgres"))
    # In-process States (state_factory) sign in like the service processes: by PGPASSWORD.
    os.environ["PGPASSWORD"] = server.extra["password"]
    try:
        yield Databases(server)
    finally:
        server.stop()
        shutil.rmtree(server.extra["data_dir"], ignore_errors=True)


@pytest.fixture
def state_factory(databases: Databases) -> Iterator[Callable]:
    """``make(state_dir, **kwargs)``: an in-process ``recoservice.state.State`` on the
    session's backend; all are closed after the test."""
    from recoservice.state import State

    made: list[State] = []

    def make(state_dir: Path, **kwargs) -> State:
        state = State(state_dir, database=databases.url_for(state_dir), **kwargs)
        made.append(state)
        return state

    yield make
    for state in made:
        state.close()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = start_azurite(tmp_path_factory.mktemp("azurite"))
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def storage_connection_string(azurite: Service) -> str:
    return str(azurite.extra["connection_string"])


@pytest.fixture(scope="session")
def blob_service(storage_connection_string: str):
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(storage_connection_string)


@pytest.fixture
def container(blob_service) -> Iterator:
    """A fresh, uniquely named container for one test."""
    client = blob_service.create_container(f"t{uuid.uuid4().hex[:20]}")
    yield client
    client.delete_container()


def _start_reco(workdir: Path, databases: Databases, faults_routes: bool = True,
                **kwargs) -> Reco:
    """Start recoservice for tests: Azurite's loopback host allowed for batch jobs, the fault
    routes on (``faults_routes=False`` starts it as in production, without them), its records
    on the session's backend (``database=`` another URL, e.g. a second replica's)."""
    workdir.mkdir(parents=True, exist_ok=True)
    database = kwargs.pop("database", None) or databases.url_for(workdir / "state")
    env = {**databases.env(), **(kwargs.pop("env", None) or {})}
    if database:
        env["RECOSERVICE_DATABASE"] = database
    admin_file = workdir / "admin-keys.txt"
    admin_file.write_text(ADMIN_KEY + "\n")
    admin_file.chmod(0o600)
    extra = ["--allow-blob-host", "127.0.0.1", "--admin-key-file", str(admin_file)]
    if faults_routes and kwargs.get("faults") is None:
        extra.append("--faults")
    kwargs["extra_args"] = extra + list(kwargs.get("extra_args") or [])
    svc = start_recoservice(workdir, keys=[TEST_KEY, OTHER_KEY], env=env, **kwargs)
    base = str(svc.extra["base_url"])
    models = requests.get(f"{base}/models", headers={"Ocp-Apim-Subscription-Key": TEST_KEY},
                          timeout=30).json()["models"]
    named = {m["name"]: m["id"] for m in reversed(models)}  # the oldest of a name wins
    return Reco(service=svc, base_url=base, key=TEST_KEY, demo_model_id=named.get("demo", ""),
                synthetic_model_id=named.get("synthetic", ""))


@pytest.fixture(scope="session")
def recoservice(tmp_path_factory: pytest.TempPathFactory, azurite: Service,
                databases: Databases) -> Iterator[Reco]:
    """One recoservice with the demo and synthetic models, shared by the session (faults
    cleared per use)."""
    reco = _start_reco(tmp_path_factory.mktemp("recoservice"), databases, demo=True)
    yield reco
    reco.service.stop()


@pytest.fixture
def reco(recoservice: Reco) -> Iterator[Reco]:
    """The shared recoservice with no fault rules before and after the test."""
    recoservice.clear_faults()
    yield recoservice
    recoservice.clear_faults()


@pytest.fixture
def recoservice_factory(tmp_path: Path, azurite: Service, databases: Databases) -> Iterator:
    """Start private recoservice instances (for restart tests); all are stopped afterwards."""
    started: list[Reco] = []

    def start(workdir: Path | None = None, **kwargs) -> Reco:
        reco = _start_reco(workdir or tmp_path / f"reco{len(started)}", databases, **kwargs)
        started.append(reco)
        return reco

    yield start
    for reco in started:
        reco.service.stop()


@pytest.fixture
def demo_items(recoservice: Reco) -> list[str]:
    """Real item ids of the demo model's catalog (the first 300)."""
    resp = requests.get(f"{recoservice.base_url}/models/{recoservice.demo_model_id}/catalog",
                        params={"$top": 300}, headers=recoservice.headers(), timeout=30)
    resp.raise_for_status()
    return [item["id"] for item in resp.json()["value"]]


@pytest.fixture
def use_app_env(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Set the function app's settings in the environment, with the settings cache cleared
    around the test. Call it with the settings to set; it returns them."""
    from recobatch.settings import get_settings

    def apply(env: dict[str, str]) -> dict[str, str]:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        return env

    yield apply
    get_settings.cache_clear()


def sqlite_text(path: Path) -> str:
    """Every value in every table of a SQLite file, as text (to look for leaked secrets)."""
    import sqlite3

    db = sqlite3.connect(path)
    try:
        return "\n".join(
            str(value)
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            for row in db.execute(f"SELECT * FROM {table}")  # noqa: S608 - our own test files
            for value in row
        )
    finally:
        db.close()


@pytest.fixture
def dump_sqlite():
    """:func:`sqlite_text` as a fixture (conftest modules are not imported by tests)."""
    return sqlite_text
