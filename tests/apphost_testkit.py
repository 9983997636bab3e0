"""What the devhost-based test folders (e2e, telemetry, triggers, ui) share: the function app's
settings against Azurite and recoservice, the API client of a running app, and waiting for a
run's marker.

Each folder's conftest keeps its own master key, task hub and container names; this module is
imported as ``apphost_testkit`` (``tests/`` is on ``sys.path``: it holds a conftest.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import requests
from azure.core.exceptions import ResourceNotFoundError

from devhost.services import Service

TERMINAL = ("Completed", "Failed", "Terminated")
CONTAINER_SETTINGS = ("BATCH_INPUT_CONTAINER", "BATCH_OUTPUT_CONTAINER", "BATCH_WORK_CONTAINER")
MARKERS = ("_SUCCESS", "_FAILED")


def app_settings(blob_service: Any, connection_string: str, reco: Any, *, hub: str, tag: str,
                 prefix: str = "", **overrides: str) -> dict[str, str]:
    """The function app's settings against Azurite (``connection_string``) and ``reco`` (the
    session's recoservice, its demo model), task hub ``hub``, containers
    ``<prefix>in-<tag>``, ``<prefix>out-<tag>`` and ``<prefix>work-<tag>``, then
    ``overrides``; the three containers are created."""
    settings = {
        "AzureWebJobsStorage": connection_string,
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "TASKHUB_NAME": hub,
        "RECO_ENDPOINT": reco.base_url,
        "RECO_SUBSCRIPTION_KEY": reco.key,
        "RECO_MODEL_ID": reco.demo_model_id,
        "BATCH_INPUT_CONTAINER": f"{prefix}in-{tag}",
        "BATCH_OUTPUT_CONTAINER": f"{prefix}out-{tag}",
        "BATCH_WORK_CONTAINER": f"{prefix}work-{tag}",
        "POLL_INITIAL_SECONDS": "2",
        "POLL_MAX_SECONDS": "10",
        "JOB_TIMEOUT_MINUTES": "10",
        **overrides,
    }
    for name in CONTAINER_SETTINGS:
        blob_service.create_container(settings[name])
    return settings


def read_blob(container: Any, path: str) -> bytes | None:
    """The blob's bytes, or ``None`` when it is not there."""
    try:
        return container.get_blob_client(path).download_blob().readall()
    except ResourceNotFoundError:
        return None


def wait_for_marker(output: Any, stem: str, service: Service,
                    timeout: float = 120) -> tuple[str, dict]:
    """Wait for ``<stem>/_SUCCESS`` or ``<stem>/_FAILED`` in the ``output`` container, ``stem``
    being the input's whole name (its output folder, ``recobatch.naming.output_prefix``);
    returns (marker, body). Fails with the devhost's log when it exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for marker in MARKERS:
            body = read_blob(output, f"{stem}/{marker}")
            if body is not None:
                return marker, json.loads(body)
        if service.proc.poll() is not None:
            raise AssertionError(f"devhost exited:\n{service.log_tail()}")
        time.sleep(0.3)
    raise AssertionError(f"no marker for {stem} after {timeout}s; devhost log:\n"
                         f"{service.log_tail()}")


@dataclass
class AppClient:
    """A devhost running function_app.py, the settings it got, and calls on its HTTP API.

    Subclasses name their folder's ``master_key`` and ``wait_timeout``.
    """

    service: Service
    settings: dict[str, str]
    blob_service: Any

    master_key: ClassVar[str] = ""
    wait_timeout: ClassVar[float] = 120

    @property
    def api(self) -> str:
        return f"{self.service.extra['base_url']}/api"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{self.api}{path}", timeout=30,
                                headers={"x-functions-key": self.master_key}, **kwargs)

    def container(self, setting: str):
        return self.blob_service.get_container_client(self.settings[setting])

    def wait(self, instance_id: str, until: Callable[[dict], bool],
             timeout: float | None = None) -> dict:
        """Poll ``GET /api/batches/{id}`` until ``until(body)`` holds; return that body."""
        deadline = time.monotonic() + (self.wait_timeout if timeout is None else timeout)
        body: dict = {}
        while time.monotonic() < deadline:
            resp = self.call("GET", f"/batches/{instance_id}")
            if resp.status_code == 200:
                body = resp.json()
                if until(body):
                    return body
            time.sleep(0.2)
        raise AssertionError(f"gave up waiting on {instance_id}: {body}\n"
                             f"{self.service.log_tail()}")

    def wait_done(self, instance_id: str, timeout: float | None = None) -> dict:
        return self.wait(instance_id, lambda b: b["runtimeStatus"] in TERMINAL, timeout)

    def marker(self, stem: str, timeout: float = 120) -> tuple[str, dict]:
        """:func:`wait_for_marker` in this app's output container."""
        return wait_for_marker(self.container("BATCH_OUTPUT_CONTAINER"), stem, self.service,
                               timeout)
