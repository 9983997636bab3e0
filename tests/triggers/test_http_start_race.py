"""POST /api/batches with job overrides while the blob trigger starts the same blob version.

The handler's user code runs with a real durable client bound to devhost; the blob trigger's
start is made (through the same client) right after the handler's first status read, which is
the window in which the two starters race.
"""

from __future__ import annotations

import json

import azure.durable_functions as df
import azure.functions as func
import pytest

from recobatch import naming
from recobatch.settings import get_settings
from triggers.http_batches import _start
from triggers.http_common import HttpError
from triggers.starting import ORCHESTRATOR, run_input


class TriggerStartsAfterFirstRead:
    """A durable client; after its first ``get_status`` the blob trigger starts the run."""

    def __init__(self, client: df.DurableOrchestrationClient, instance_id: str,
                 payload: dict) -> None:
        self._client, self._instance_id, self._payload = client, instance_id, payload
        self._calls = 0

    async def get_status(self, instance_id: str):
        status = await self._client.get_status(instance_id)
        self._calls += 1
        if self._calls == 1:
            await self._client.start_new(ORCHESTRATOR, self._instance_id, self._payload)
        return status

    def __getattr__(self, name: str):
        return getattr(self._client, name)


async def answered(req: func.HttpRequest, client) -> func.HttpResponse:
    """What ``start_batch`` answers (it wraps ``_start`` the same way)."""
    try:
        return await _start(req, client)
    except HttpError as exc:
        return exc.response()


@pytest.fixture
def app_env(app_env, run_async):
    app_env.run_async = run_async
    return app_env


def test_job_overrides_lost_to_a_concurrent_start_are_409(app_env, demo_items):
    name = "race/overrides.json"
    container = app_env.container("BATCH_INPUT_CONTAINER")
    etag = container.get_blob_client(name).upload_blob(
        json.dumps({"requests": [{"SeedItems": demo_items[:2]}]}), overwrite=True)["etag"]
    settings = get_settings()
    instance_id = naming.instance_id(settings.input_container, name, etag)
    by_trigger = run_input(settings.input_container, name, etag.strip('"'), None, {}, settings)
    client = TriggerStartsAfterFirstRead(df.DurableOrchestrationClient(app_env.binding_json()),
                                         instance_id, by_trigger)
    body = {"input": {"blob": name}, "job": {"numberOfResults": 2}}
    req = func.HttpRequest("POST", f"{app_env.api}/batches", body=json.dumps(body).encode(),
                           headers={"content-type": "application/json"})

    answer = app_env.run_async(answered(req, client))

    assert answer.status_code == 409, answer.get_body()
    assert instance_id in json.loads(answer.get_body())["error"]["message"]
