"""End-to-end fixtures: devhost running the real function_app.py against Azurite and recoservice.

Each devhost gets its own containers and state folder, so tests can restart or kill it without
touching others. Durable timers run 20x faster (``--timer-scale``) to keep the suite short.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from apphost_testkit import AppClient, app_settings, read_blob

from devhost.services import REPO_ROOT, Service, start_devhost

pytestmark = pytest.mark.e2e

MASTER_KEY = "e2e-master-" + uuid.uuid4().hex[:8]


@dataclass
class App(AppClient):
    """A devhost running function_app.py, with the settings and containers it uses."""

    workdir: Path
    timer_scale: float
    restarts: list[Service] = field(default_factory=list)

    master_key = MASTER_KEY

    @property
    def input(self):
        return self.container("BATCH_INPUT_CONTAINER")

    @property
    def output(self):
        return self.container("BATCH_OUTPUT_CONTAINER")

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.call("POST", path, **kwargs)

    def get(self, path: str) -> requests.Response:
        return self.call("GET", path)

    def upload(self, name: str, body: bytes | str) -> str:
        """Upload an input blob; returns its ETag."""
        data = body.encode() if isinstance(body, str) else body
        blob = self.input.get_blob_client(name)
        return str(blob.upload_blob(data, overwrite=True)["etag"]).strip('"')

    def read_output(self, path: str) -> bytes | None:
        return read_blob(self.output, path)

    def wait_for_marker(self, stem: str, timeout: float = 120) -> tuple[str, dict]:
        """Wait for the input ``stem``'s marker (:func:`apphost_testkit.wait_for_marker`);
        returns (marker, body)."""
        return self.marker(stem, timeout)

    def restart(self, kill: bool = True) -> None:
        self.service.stop(kill=kill)
        self.restarts.append(self.service)
        self.service = start_devhost(REPO_ROOT, self.workdir, self.settings,
                                     timer_scale=self.timer_scale)


@pytest.fixture
def app_factory(tmp_path: Path, azurite: Service, blob_service, recoservice) -> Iterator[Callable]:
    apps: list[App] = []

    def start(key: str | None = None, timer_scale: float = 20.0, **overrides: str) -> App:
        tag = uuid.uuid4().hex[:8]
        settings = app_settings(
            blob_service, str(azurite.extra["connection_string"]), recoservice,
            hub="RecobatchTestHub", tag=tag, **{
                "DEVHOST_MASTER_KEY": MASTER_KEY,
                "RECO_SUBSCRIPTION_KEY": key or recoservice.key,
                **overrides})
        workdir = tmp_path / f"devhost-{tag}"
        svc = start_devhost(REPO_ROOT, workdir, settings, timer_scale=timer_scale)
        app = App(service=svc, settings=settings, workdir=workdir, blob_service=blob_service,
                  timer_scale=timer_scale)
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.service.stop()
