"""A re-upload while the older upload's run is still in flight: the newer upload's output wins.

Both runs write to the same folder (``batch-output/<input name>/``); the older run
finds its input ETag replaced before writing, writes nothing and completes as ``Superseded``.
"""

from __future__ import annotations

import json
import random
import time

import pytest

from recobatch import naming

pytestmark = pytest.mark.e2e


def _body(items: list[str], seed: int) -> str:
    rng = random.Random(seed)
    return json.dumps({"requests": [{"SeedItems": rng.sample(items, rng.randint(1, 3))}
                                    for _ in range(5)]})


def _run_id(app, name: str, etag: str) -> str:
    return naming.instance_id(app.settings["BATCH_INPUT_CONTAINER"], name, etag)


def _wait_running(app, instance_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = app.get(f"/batches/{instance_id}")
        progress = (resp.json().get("progress") or {}) if resp.status_code == 200 else {}
        if (progress.get("chunks") or {}).get("running"):
            return
        time.sleep(0.2)
    raise AssertionError(f"{instance_id} never had a running chunk:\n{app.service.log_tail()}")


def _wait_done(app, instance_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = app.get(f"/batches/{instance_id}").json()
        if status["runtimeStatus"] in ("Completed", "Failed"):
            return status
        time.sleep(0.2)
    raise AssertionError(f"{instance_id} did not finish:\n{app.service.log_tail()}")


def _wait_success_of(app, stem: str, etag: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = app.read_output(f"{stem}/_SUCCESS")
        if body is not None and json.loads(body)["input"]["etag"].strip('"') == etag:
            return json.loads(body)
        time.sleep(0.3)
    raise AssertionError(f"no _SUCCESS of {etag}:\n{app.service.log_tail()}")


def _seeds(app, stem: str) -> list:
    return [r["request"]["seedItems"]
            for r in json.loads(app.read_output(f"{stem}/results.json"))["results"]]


def test_older_run_finishing_last_leaves_the_newer_uploads_output(app_factory, reco,
                                                                  demo_items):
    # Run 1's first status check hangs while its job completes (freeing the subscription's
    # one job slot), so run 2 can run to the end and run 1 finishes last.
    reco.set_faults([{"target": "status", "action": "hang", "seconds": 20, "count": 1}])
    app = app_factory()
    etag1 = app.upload("same.json", _body(demo_items, 1))
    run1 = _run_id(app, "same.json", etag1)
    _wait_running(app, run1)
    deadline = time.monotonic() + 30
    while reco.faults():
        assert time.monotonic() < deadline, "run 1 never checked its operation"
        time.sleep(0.2)
    v2 = _body(demo_items, 2)
    etag2 = app.upload("same.json", v2)
    success = _wait_success_of(app, "same.json", etag2, timeout=15)

    final = _wait_done(app, run1)

    assert final["runtimeStatus"] == "Completed", final
    assert final["result"]["status"] == "Superseded"
    assert final["progress"]["phase"] == "superseded"
    marker = json.loads(app.read_output("same.json/_SUCCESS"))
    assert marker["instanceId"] == success["instanceId"] == _run_id(app, "same.json", etag2)
    assert marker["input"]["etag"].strip('"') == etag2
    assert app.read_output("same.json/_FAILED") is None
    assert _seeds(app, "same.json") == [r["SeedItems"] for r in json.loads(v2)["requests"]]


def test_cancelled_older_run_writes_no_failed_marker_over_the_newer_upload(app_factory, reco,
                                                                           demo_items):
    # Run 1's job is stuck, so it holds the subscription's job slot: run 2 waits (409) until
    # run 1 is cancelled, then succeeds; run 1 must not leave a _FAILED behind.
    reco.set_faults([{"target": "job", "action": "stuck", "count": 1}])
    app = app_factory(timer_scale=5.0)
    etag1 = app.upload("again.json", _body(demo_items, 3))
    run1 = _run_id(app, "again.json", etag1)
    _wait_running(app, run1)
    time.sleep(1.0)  # let the chunk submit its job upstream
    v2 = _body(demo_items, 4)
    etag2 = app.upload("again.json", v2)

    cancel = app.post(f"/batches/{run1}/cancel")
    assert cancel.status_code == 202, cancel.text
    final = _wait_done(app, run1)
    failed_after_run1 = app.read_output("again.json/_FAILED")
    success = _wait_success_of(app, "again.json", etag2)

    assert final["runtimeStatus"] == "Completed", final
    assert final["result"]["status"] == "Superseded"
    assert failed_after_run1 is None
    assert app.read_output("again.json/_FAILED") is None
    assert success["instanceId"] == _run_id(app, "again.json", etag2)
    assert success["input"]["etag"].strip('"') == etag2
    assert _seeds(app, "again.json") == [r["SeedItems"] for r in json.loads(v2)["requests"]]
