"""The cancel handler against a chunk that starts while the handler runs.

The handler's user code is called with a real durable client bound to devhost; the only thing
added is a pause after the handler's first status read, during which the run really moves on
to its next chunk (its first job ended upstream). That is the window the design says no chunk
may slip through: the new chunk checked the ``_CANCEL`` flag before it was written, and it was
not in the ``runningChunks`` the handler first read.
"""

from __future__ import annotations

import json
import time

import azure.durable_functions as df
import azure.functions as func
import pytest
import requests
from trigger_helpers import StatusPause

from recobatch import naming
from triggers.http_cancel import _cancel


def _jobs(reco, instance_id: str) -> list[dict]:
    resp = requests.get(f"{reco.base_url}/batchjobs", headers=reco.headers(), timeout=10)
    resp.raise_for_status()
    return [job for job in resp.json()["batchJobs"]
            if instance_id in json.dumps(job["requestinfo"]["input"])]


def _until(what: str, check, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.fixture
def app_env(app_env, run_async):
    app_env.run_async = run_async
    return app_env


def test_chunk_started_during_cancel_is_signalled(app_env, reco, demo_items):
    # Two chunks (each just under 2,000,000 bytes is about 45k requests); both jobs stay Running.
    requests_ = [{"SeedItems": [demo_items[i % 200], demo_items[(i + 7) % 200]]}
                 for i in range(70_000)]
    reco.set_faults([{"target": "job", "action": "stuck", "count": 2}])
    resp = app_env.call("POST", "/batches", json={"input": {"requests": requests_}})
    assert resp.status_code == 202, resp.text
    instance_id = resp.json()["instanceId"]
    first = naming.chunk_orchestration_id(instance_id, "chunk-00001")
    second = naming.chunk_orchestration_id(instance_id, "chunk-00002")
    app_env.wait(instance_id, lambda b: b["progress"]["runningChunks"] == [first]
                 and b["progress"]["chunks"]["total"] == 2, timeout=120)
    job1 = _until("the first job", lambda: _jobs(reco, instance_id))[0]

    def first_job_ends_and_second_chunk_submits() -> None:
        requests.delete(f"{reco.base_url}/operations/{job1['operationId']}",
                        headers=reco.headers(), timeout=10).raise_for_status()
        _until("the second job", lambda: len(_jobs(reco, instance_id)) == 2
               and _jobs(reco, instance_id)[1]["status"] in ("Registered", "InProgress"))

    client = StatusPause(df.DurableOrchestrationClient(app_env.binding_json()),
                         first_job_ends_and_second_chunk_submits)
    req = func.HttpRequest("POST", f"{app_env.api}/batches/{instance_id}/cancel", body=b"",
                           route_params={"id": instance_id})

    answer = app_env.run_async(_cancel(req, client))

    assert answer.status_code == 202
    assert json.loads(answer.get_body())["chunksSignalled"] == [second]
    done = app_env.wait_done(instance_id, timeout=120)
    assert done["result"]["code"] == "Cancelled"
    stem = done["progress"]["output"].split("/", 1)[1]
    marker = json.loads(app_env.container("BATCH_OUTPUT_CONTAINER")
                        .get_blob_client(stem + "_FAILED").download_blob().readall())
    statuses = {c["name"]: c["status"] for c in marker["chunks"]}
    assert statuses == {"chunk-00001": "Cancelled", "chunk-00002": "Cancelled"}
