"""devhost fixtures: the sample app served by a real devhost subprocess against Azurite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from devhost_testkit import SAMPLE_APP, DevHost

from devhost.services import Service, start_devhost


@pytest.fixture
def devhost_factory(tmp_path: Path, storage_connection_string: str) -> Iterator:
    """Start devhosts for the sample app; all are stopped after the test."""
    started: list[Service] = []

    def start(workdir: Path | None = None, timer_scale: float = 600.0,
              container: str | None = None, extra_env: dict[str, str] | None = None) -> DevHost:
        workdir = workdir or tmp_path / "devhost"
        state = workdir / "side-effects"
        state.mkdir(parents=True, exist_ok=True)
        key = "key-" + uuid.uuid4().hex[:12]
        container = container or f"c{uuid.uuid4().hex[:16]}"
        env = {"SAMPLE_STATE_DIR": str(state), "SAMPLE_CONTAINER": container,
               "SampleStorage": storage_connection_string, **(extra_env or {})}
        svc = start_devhost(SAMPLE_APP, workdir, env=env, timer_scale=timer_scale,
                            master_key=key, settings=workdir / "local.settings.json")
        started.append(svc)
        return DevHost(service=svc, key=key, state_dir=state, container=container)

    yield start
    for svc in started:
        svc.stop()


@pytest.fixture(scope="module")
def devhost(tmp_path_factory: pytest.TempPathFactory,
            storage_connection_string: str) -> Iterator[DevHost]:
    """One devhost shared by a module's tests (timers run 600 times faster)."""
    workdir = tmp_path_factory.mktemp("devhost")
    state = workdir / "side-effects"
    state.mkdir()
    key = "key-" + uuid.uuid4().hex[:12]
    env = {"SAMPLE_STATE_DIR": str(state), "SAMPLE_CONTAINER": f"c{uuid.uuid4().hex[:16]}",
           "SampleStorage": storage_connection_string}
    svc = start_devhost(SAMPLE_APP, workdir, env=env, timer_scale=600.0, master_key=key)
    yield DevHost(service=svc, key=key, state_dir=state, container=env["SAMPLE_CONTAINER"])
    svc.stop()
