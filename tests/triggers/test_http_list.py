"""GET /api/batches lists runs (batch_orchestrator instances) only, from every page of the
management API (the host pages its instance list, 100 by default)."""

from __future__ import annotations

import json
import uuid

import requests


def test_list_follows_the_continuation_token_and_shows_runs_only(app, demo_items):
    # 101 chunk sub-orchestrations (bad input: they fail at once) fill the first page
    hook = f"{app.base_url}/runtime/webhooks/durabletask/orchestrators/chunk_orchestrator"
    for _ in range(101):
        resp = requests.post(f"{hook}/rb-{uuid.uuid4().hex}:chunk-00001",
                             params={"code": app.master_key}, data=json.dumps({}), timeout=10)
        assert resp.status_code == 202
    body = {"input": {"requests": [{"SeedItems": [demo_items[21]]}]}}
    run_id = app.call("POST", "/batches", json=body).json()["instanceId"]
    app.wait_done(run_id)

    resp = app.call("GET", "/batches")

    assert resp.status_code == 200
    ids = [run["instanceId"] for run in resp.json()["runs"]]
    assert run_id in ids
    assert not [i for i in ids if ":" in i]  # no chunk sub-orchestration is a run
