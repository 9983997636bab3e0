"""The HTTP API over real HTTP: devhost serving function_app.py, Azurite, recoservice."""

from __future__ import annotations

import json

from recobatch import naming

ITEM_JOB = {"numberOfResults": 3}


def inline(items: list[str], tag: int) -> dict:
    # ``tag`` makes the body (hence the saved blob and the run) unique per test
    return {"input": {"requests": [{"SeedItems": items[:2]}, {"SeedItems": [items[tag]]}]},
            "job": ITEM_JOB}


def test_inline_requests_are_saved_then_run_to_success(app, demo_items):
    resp = app.call("POST", "/batches", json=inline(demo_items, 3))

    assert resp.status_code == 202
    body = resp.json()
    name = body["input"]["name"]
    saved_blob = app.container("BATCH_INPUT_CONTAINER").get_blob_client(name)
    saved = json.loads(saved_blob.download_blob().readall())
    etag = saved_blob.get_blob_properties().etag
    assert name.startswith("http/") and name.endswith(".json")
    assert saved == {"requests": inline(demo_items, 3)["input"]["requests"], "job": ITEM_JOB}
    assert body["instanceId"] == naming.instance_id(app.settings["BATCH_INPUT_CONTAINER"],
                                                    name, etag)
    assert body["started"] is True
    assert body["statusUri"] == f"{app.api}/batches/{body['instanceId']}"
    assert resp.headers["Location"] == body["statusUri"]

    done = app.wait_done(body["instanceId"])

    assert done["runtimeStatus"] == "Completed"
    assert done["progress"]["phase"] == "completed" and done["progress"]["requests"] == 2
    assert done["progress"]["chunks"] == {"total": 1, "running": 0, "succeeded": 1, "failed": 0}
    stem = naming.output_prefix(name)
    assert done["progress"]["output"] == f"{app.settings['BATCH_OUTPUT_CONTAINER']}/{stem}"
    marker = app.container("BATCH_OUTPUT_CONTAINER").get_blob_client(stem + "_SUCCESS")
    assert json.loads(marker.download_blob().readall())["job"]["numberOfResults"] == 3


def test_posting_the_same_body_again_returns_the_same_run(app, demo_items):
    first = app.call("POST", "/batches", json=inline(demo_items, 4)).json()

    again = app.call("POST", "/batches", json=inline(demo_items, 4))

    assert again.status_code == 202
    assert again.json()["instanceId"] == first["instanceId"]
    assert again.json()["started"] is False
    app.wait_done(first["instanceId"])


def test_blob_input_starts_the_run_with_the_blob_version_id(app, demo_items):
    inputs = app.container("BATCH_INPUT_CONTAINER")
    blob = inputs.upload_blob("byname/reqs.json", json.dumps(
        {"requests": [{"SeedItems": [demo_items[7]]}]}), overwrite=True)
    etag = blob.get_blob_properties().etag

    resp = app.call("POST", "/batches", json={"input": {"blob": "byname/reqs.json"}})

    assert resp.status_code == 202
    instance_id = resp.json()["instanceId"]
    assert instance_id == naming.instance_id(inputs.container_name, "byname/reqs.json", etag)
    assert app.wait_done(instance_id)["runtimeStatus"] == "Completed"


def test_blob_input_that_does_not_exist_is_400_naming_input_blob(app):
    resp = app.call("POST", "/batches", json={"input": {"blob": "nowhere/none.json"}})

    assert resp.status_code == 400
    assert "input.blob" in resp.json()["error"]["message"]


def test_unknown_run_is_404_for_status_and_cancel(app):
    unknown = "rb-" + "f" * 32

    assert app.call("GET", f"/batches/{unknown}").status_code == 404
    assert app.call("POST", f"/batches/{unknown}/cancel").status_code == 404


def test_cancel_of_a_finished_run_is_409(app, demo_items):
    instance_id = app.call("POST", "/batches", json=inline(demo_items, 5)).json()["instanceId"]
    app.wait_done(instance_id)

    resp = app.call("POST", f"/batches/{instance_id}/cancel")

    assert resp.status_code == 409
    assert "already finished" in resp.json()["error"]["message"]


def test_cancel_of_a_running_run_stops_its_job_and_writes_cancelled(app, reco, demo_items):
    reco.set_faults([{"target": "job", "action": "stuck", "count": 1}])
    instance_id = app.call("POST", "/batches", json=inline(demo_items, 6)).json()["instanceId"]
    running = app.wait(instance_id, lambda b: b["progress"]["runningChunks"]
                       and b["progress"]["phase"] == "running")["progress"]

    resp = app.call("POST", f"/batches/{instance_id}/cancel")

    assert resp.status_code == 202
    assert resp.json()["chunksSignalled"] == running["runningChunks"]
    done = app.wait_done(instance_id)
    assert done["runtimeStatus"] == "Completed" and done["progress"]["phase"] == "failed"
    assert done["result"]["code"] == "Cancelled"
    flag = app.container("BATCH_WORK_CONTAINER").get_blob_client(naming.cancel_blob(instance_id))
    assert flag.exists()
    stem = done["progress"]["output"].split("/", 1)[1]
    marker = app.container("BATCH_OUTPUT_CONTAINER").get_blob_client(stem + "_FAILED")
    assert json.loads(marker.download_blob().readall())["code"] == "Cancelled"


def test_list_shows_runs_with_their_progress(app, demo_items):
    instance_id = app.call("POST", "/batches", json=inline(demo_items, 8)).json()["instanceId"]
    app.wait_done(instance_id)

    resp = app.call("GET", "/batches")

    assert resp.status_code == 200
    runs = {run["instanceId"]: run for run in resp.json()["runs"]}
    assert runs[instance_id]["runtimeStatus"] == "Completed"
    assert runs[instance_id]["customStatus"]["chunks"]["succeeded"] == 1
    assert runs[instance_id]["name"].startswith("http/")
