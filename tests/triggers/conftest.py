"""Trigger fixtures: the real function_app.py served by devhost against Azurite and recoservice.

``app`` is one devhost per module (own containers); ``client_binding`` is the durable client
binding JSON pointing at that devhost, so tests can also call a trigger's user code directly
with a real ``DurableOrchestrationClient``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from apphost_testkit import AppClient, app_settings

from devhost.services import REPO_ROOT, Service, start_devhost
from recobatch.settings import get_settings

MASTER_KEY = "triggers-" + uuid.uuid4().hex[:10]


@dataclass
class TriggerApp(AppClient):
    """A devhost running function_app.py and what the tests call on it."""

    master_key = MASTER_KEY
    wait_timeout = 90

    @property
    def base_url(self) -> str:
        return str(self.service.extra["base_url"])

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
    settings = app_settings(blob_service, str(azurite.extra["connection_string"]), recoservice,
                            hub="RecobatchTestHub", tag=uuid.uuid4().hex[:8], prefix="t")
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
