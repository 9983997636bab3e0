"""Telemetry fixtures: devhost running the real function_app.py with its spans written to a
local file (``RECOBATCH_TRACE_FILE``), against Azurite and the session's recoservice."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from apphost_testkit import TERMINAL, AppClient, app_settings

from devhost.services import REPO_ROOT, Service, start_devhost

MASTER_KEY = "otel-master-" + uuid.uuid4().hex[:8]


@dataclass
class TracedApp(AppClient):
    """A devhost serving function_app.py, the settings it got and its span file."""

    trace_file: Path

    master_key = MASTER_KEY

    @property
    def base(self) -> str:
        return str(self.service.extra["base_url"])

    def upload(self, name: str, body: str) -> None:
        container = self.container("BATCH_INPUT_CONTAINER")
        container.get_blob_client(name).upload_blob(body.encode(), overwrite=True)

    def instance(self, instance_id: str, timeout: float = 60) -> dict:
        """The instance's status with its history, once it is in a terminal state."""
        deadline = time.monotonic() + timeout
        while True:
            resp = requests.get(
                f"{self.base}/runtime/webhooks/durabletask/instances/{instance_id}",
                params={"showHistory": "true"}, headers={"x-functions-key": MASTER_KEY},
                timeout=30)
            body = resp.json() if resp.status_code in (200, 202) else {}
            if body.get("runtimeStatus") in TERMINAL or time.monotonic() > deadline:
                return body
            time.sleep(0.2)

    def spans(self) -> list[dict]:
        if not self.trace_file.exists():
            return []
        return [json.loads(line) for line in self.trace_file.read_text().splitlines()]


@pytest.fixture
def traced_app_factory(tmp_path: Path, azurite: Service, blob_service,
                       recoservice) -> Iterator[Callable[..., TracedApp]]:
    apps: list[TracedApp] = []

    def start(trace: bool = True, **overrides: str) -> TracedApp:
        tag = uuid.uuid4().hex[:8]
        trace_file = tmp_path / f"spans-{tag}.jsonl"
        settings = app_settings(
            blob_service, str(azurite.extra["connection_string"]), recoservice,
            hub="RecobatchOtelHub", tag=tag, **{
                "DEVHOST_MASTER_KEY": MASTER_KEY,
                # the parent's environment must not switch telemetry on or off for the test
                "APPLICATIONINSIGHTS_CONNECTION_STRING": "",
                "RECOBATCH_TRACE_FILE": str(trace_file) if trace else "",
                **overrides})
        svc = start_devhost(REPO_ROOT, tmp_path / f"devhost-{tag}", settings, timer_scale=20.0)
        app = TracedApp(service=svc, settings=settings, trace_file=trace_file,
                        blob_service=blob_service)
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.service.stop()
