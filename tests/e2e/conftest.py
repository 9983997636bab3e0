"""End-to-end fixtures: devhost running the real function_app.py against Azurite and recoservice.

Each devhost gets its own containers and state folder, so tests can restart or kill it without
touching others. Durable timers run 20x faster (``--timer-scale``) to keep the suite short.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError

from devhost.services import REPO_ROOT, Service, start_devhost

pytestmark = pytest.mark.e2e

MASTER_KEY = "e2e-master-" + uuid.uuid4().hex[:8]


@dataclass
class App:
    """A devhost running function_app.py, with the settings and containers it uses."""

    service: Service
    settings: dict[str, str]
    workdir: Path
    blob_service: object
    timer_scale: float
    restarts: list[Service] = field(default_factory=list)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.service.port}/api"

    @property
    def input(self):
        return self.blob_service.get_container_client(self.settings["BATCH_INPUT_CONTAINER"])

    @property
    def output(self):
        return self.blob_service.get_container_client(self.settings["BATCH_OUTPUT_CONTAINER"])

    def post(self, path: str, **kwargs) -> requests.Response:
        return requests.post(f"{self.api}{path}", headers={"x-functions-key": MASTER_KEY},
                             timeout=30, **kwargs)

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.api}{path}", headers={"x-functions-key": MASTER_KEY},
                            timeout=30)

    def upload(self, name: str, body: bytes | str) -> str:
        """Upload an input blob; returns its ETag."""
        data = body.encode() if isinstance(body, str) else body
        blob = self.input.get_blob_client(name)
        return str(blob.upload_blob(data, overwrite=True)["etag"]).strip('"')

    def read_output(self, path: str) -> bytes | None:
        try:
            return self.output.get_blob_client(path).download_blob().readall()
        except ResourceNotFoundError:
            return None

    def wait_for_marker(self, stem: str, timeout: float = 120) -> tuple[str, dict]:
        """Wait for ``<stem>/_SUCCESS`` or ``<stem>/_FAILED``, ``stem`` being the input's whole
        name (its output folder, ``recobatch.naming.output_prefix``); returns (marker, body)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for marker in ("_SUCCESS", "_FAILED"):
                body = self.read_output(f"{stem}/{marker}")
                if body is not None:
                    return marker, json.loads(body)
            if self.service.proc.poll() is not None:
                raise AssertionError(f"devhost exited:\n{self.service.log_tail()}")
            time.sleep(0.3)
        raise AssertionError(f"no marker for {stem} after {timeout}s; devhost log:\n"
                             f"{self.service.log_tail()}")

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
        settings = {
            "AzureWebJobsStorage": str(azurite.extra["connection_string"]),
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "TASKHUB_NAME": "RecobatchTestHub",
            "DEVHOST_MASTER_KEY": MASTER_KEY,
            "RECO_ENDPOINT": recoservice.base_url,
            "RECO_SUBSCRIPTION_KEY": key or recoservice.key,
            "RECO_MODEL_ID": recoservice.demo_model_id,
            "BATCH_INPUT_CONTAINER": f"in-{tag}",
            "BATCH_OUTPUT_CONTAINER": f"out-{tag}",
            "BATCH_WORK_CONTAINER": f"work-{tag}",
            "POLL_INITIAL_SECONDS": "2",
            "POLL_MAX_SECONDS": "10",
            "JOB_TIMEOUT_MINUTES": "10",
        }
        settings.update(overrides)
        for name in ("BATCH_INPUT_CONTAINER", "BATCH_OUTPUT_CONTAINER", "BATCH_WORK_CONTAINER"):
            blob_service.create_container(settings[name])
        workdir = tmp_path / f"devhost-{tag}"
        svc = start_devhost(REPO_ROOT, workdir, settings, timer_scale=timer_scale)
        app = App(service=svc, settings=settings, workdir=workdir, blob_service=blob_service,
                  timer_scale=timer_scale)
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.service.stop()
