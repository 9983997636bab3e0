"""Trigger fixtures: the real function_app.py served by devhost against Azurite and recoservice.

``app`` is one devhost per module (own containers); ``client_binding`` is the durable client
binding JSON pointing at that devhost, so tests can also call a trigger's user code directly
with a real ``DurableOrchestrationClient``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from devhost.services import REPO_ROOT, Service, start_devhost
from recobatch.settings import get_settings

MASTER_KEY = "triggers-" + uuid.uuid4().hex[:10]
TERMINAL = ("Completed", "Failed", "Terminated")


@dataclass
class TriggerApp:
    """A devhost running function_app.py and what the tests call on it."""

    service: Service
    settings: dict[str, str]
    blob_service: Any

    @property
    def master_key(self) -> str:
        return MASTER_KEY

    @property
    def base_url(self) -> str:
        return str(self.service.extra["base_url"])

    @property
    def api(self) -> str:
        return f"{self.service.extra['base_url']}/api"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{self.api}{path}", timeout=30,
                                headers={"x-functions-key": MASTER_KEY}, **kwargs)

    def container(self, setting: str):
        return self.blob_service.get_container_client(self.settings[setting])

    def wait(self, instance_id: str, until: Any, timeout: float = 90) -> dict:
        """Poll ``GET /api/batches/{id}`` until ``until(body)`` holds; return that body."""
        deadline = time.monotonic() + timeout
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

    def wait_done(self, instance_id: str, timeout: float = 90) -> dict:
        return self.wait(instance_id, lambda b: b["runtimeStatus"] in TERMINAL, timeout)

    def binding_json(self) -> str:
        """The durable client binding, shaped like the host's (see the protocol reference)."""
        base = str(self.service.extra["base_url"])
        hook = f"{base}/runtime/webhooks/durabletask"
        hub = self.settings["TASKHUB_NAME"]  # host.json hubName is %TASKHUB_NAME%
        query = f"taskHub={hub}&connection=Storage&code={MASTER_KEY}"
        inst = f"{hook}/instances/INSTANCEID"
        return json.dumps({
            "taskHubName": hub,
            "creationUrls": {
                "createNewInstancePostUri": f"{hook}/orchestrators/{{functionName}}?{query}",
                "createAndWaitOnNewInstancePostUri": f"{hook}/orchestrators/{{functionName}}"
                                                     f"?timeout={{timeoutInSeconds}}&{query}"},
            "managementUrls": {
                "id": "INSTANCEID", "statusQueryGetUri": f"{inst}?{query}",
                "sendEventPostUri": f"{inst}/raiseEvent/{{eventName}}?{query}",
                "terminatePostUri": f"{inst}/terminate?reason={{text}}&{query}",
                "rewindPostUri": f"{inst}/rewind?reason={{text}}&{query}",
                "purgeHistoryDeleteUri": f"{inst}?{query}",
                "restartPostUri": f"{inst}/restart?{query}",
                "suspendPostUri": f"{inst}/suspend?reason={{text}}&{query}",
                "resumePostUri": f"{inst}/resume?reason={{text}}&{query}"},
            "baseUrl": hook, "requiredQueryStringParameters": query,
            "rpcBaseUrl": f"{base}/durabletask/"})


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, azurite: Service, blob_service,
        recoservice) -> Iterator[TriggerApp]:
    tag = uuid.uuid4().hex[:8]
    settings = {
        "AzureWebJobsStorage": str(azurite.extra["connection_string"]),
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "TASKHUB_NAME": "RecobatchTestHub",
        "RECO_ENDPOINT": recoservice.base_url,
        "RECO_SUBSCRIPTION_KEY": recoservice.key,
        "RECO_MODEL_ID": recoservice.demo_model_id,
        "BATCH_INPUT_CONTAINER": f"tin-{tag}",
        "BATCH_OUTPUT_CONTAINER": f"tout-{tag}",
        "BATCH_WORK_CONTAINER": f"twork-{tag}",
        "POLL_INITIAL_SECONDS": "2",
        "POLL_MAX_SECONDS": "10",
        "JOB_TIMEOUT_MINUTES": "10",
    }
    for name in ("BATCH_INPUT_CONTAINER", "BATCH_OUTPUT_CONTAINER", "BATCH_WORK_CONTAINER"):
        blob_service.create_container(settings[name])
    workdir: Path = tmp_path_factory.mktemp("triggers-devhost")
    svc = start_devhost(REPO_ROOT, workdir, settings, timer_scale=20.0, master_key=MASTER_KEY)
    yield TriggerApp(service=svc, settings=settings, blob_service=blob_service)
    svc.stop()


@pytest.fixture
def app_env(app: TriggerApp, monkeypatch: pytest.MonkeyPatch) -> Iterator[TriggerApp]:
    """The app's settings in this process too, for calling trigger code directly."""
    for name, value in app.settings.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield app
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def run_async() -> Iterator[Any]:
    """Run coroutines on one loop: the Durable SDK keeps one aiohttp session per process,
    bound to the loop of its first call."""
    loop = asyncio.new_event_loop()
    yield loop.run_until_complete
    loop.close()
