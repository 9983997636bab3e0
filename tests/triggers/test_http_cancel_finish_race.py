"""A cancel that races the run's completion: the run is Running when the handler first looks
and has finished by the time it signals it. The answer is 409 (already finished), never 500."""

from __future__ import annotations

import json
import time

import azure.durable_functions as df
import azure.functions as func
import pytest
import requests
from trigger_helpers import StatusPause

from triggers.http_cancel import _cancel
from triggers.http_common import HttpError


@pytest.fixture
def app_env(app_env, run_async):
    app_env.run_async = run_async
    return app_env


def test_cancel_racing_completion_is_409(app_env, reco, demo_items):
    reco.set_faults([{"target": "job", "action": "stuck", "count": 1}])
    body = {"input": {"requests": [{"SeedItems": [demo_items[31]]}]}}
    instance_id = app_env.call("POST", "/batches", json=body).json()["instanceId"]
    app_env.wait(instance_id, lambda b: b["progress"]["runningChunks"]
                 and b["progress"]["phase"] == "running")

    def the_run_finishes() -> None:
        jobs = requests.get(f"{reco.base_url}/batchjobs", headers=reco.headers(),
                            timeout=10).json()["batchJobs"]
        for job in jobs:
            if instance_id in json.dumps(job["requestinfo"]["input"]) and \
                    job["status"] in ("Registered", "InProgress", "Running"):
                requests.delete(f"{reco.base_url}/operations/{job['operationId']}",
                                headers=reco.headers(), timeout=10)
        app_env.wait_done(instance_id)
        time.sleep(0.2)

    client = StatusPause(df.DurableOrchestrationClient(app_env.binding_json()),
                                  the_run_finishes)
    req = func.HttpRequest("POST", f"{app_env.api}/batches/{instance_id}/cancel", body=b"",
                           route_params={"id": instance_id})

    try:  # what cancel_batch does with the handler's outcome
        answer = app_env.run_async(_cancel(req, client))
    except HttpError as exc:
        answer = exc.response()

    assert answer.status_code == 409
    assert "already finished" in json.loads(answer.get_body())["error"]["message"]
