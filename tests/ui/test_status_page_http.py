"""``GET /api/ui`` over plain HTTP, and the additions to the API the page reads: the marker in
``GET /api/batches/{id}``, ``lastUpdatedTime`` in ``GET /api/batches``."""

from __future__ import annotations

import json
import re

import requests

from triggers.http_batches import MAX_MARKER_BYTES, marker_view

STUCK = {"target": "job", "action": "stuck", "count": 1}


def seeds(items: list[str], start: int, count: int) -> list[dict]:
    return [{"SeedItems": [items[i % len(items)]]} for i in range(start, start + count)]


def test_the_page_needs_the_function_key(ui_app):
    url = f"{ui_app.api}/ui"

    answers = [requests.get(url, timeout=10).status_code,
               requests.get(url, params={"code": "wrong"}, timeout=10).status_code,
               requests.get(url, params={"code": ui_app.master_key}, timeout=10).status_code]

    assert answers == [401, 401, 200]


def test_the_page_is_html_with_a_fresh_nonce_in_a_strict_policy(ui_app):
    first = requests.get(f"{ui_app.api}/ui", params={"code": ui_app.master_key}, timeout=10)
    second = ui_app.call("GET", "/ui")

    assert first.headers["Content-Type"].startswith("text/html")
    policy = first.headers["Content-Security-Policy"]
    nonce = re.search(r"script-src 'nonce-([A-Za-z0-9_-]{20,})'", policy).group(1)
    assert f"style-src 'nonce-{nonce}'" in policy and "default-src 'none'" in policy
    assert "connect-src 'self'" in policy and "unsafe-inline" not in policy
    assert first.text.count(f'nonce="{nonce}"') == 2 and "{{nonce}}" not in first.text
    assert nonce not in second.text
    assert first.headers["Referrer-Policy"] == "no-referrer"
    assert first.headers["Cache-Control"] == "no-store"
    assert ui_app.master_key not in first.text
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", first.text)  # self-contained


def test_an_ended_run_answers_its_marker(ui_app, items, recoservice):
    run_id = ui_app.start(seeds(items, 10, 60))
    body = ui_app.wait_done(run_id)
    blob = ui_app.container("BATCH_OUTPUT_CONTAINER").get_blob_client(f"{body['name']}/_SUCCESS")
    stored = json.loads(blob.download_blob().readall())

    resp = ui_app.call("GET", f"/batches/{run_id}")

    marker = resp.json()["marker"]
    assert marker["kind"] == "success" and marker["code"] is None
    assert marker["counts"] == stored["counts"]
    assert marker["chunksTotal"] == body["progress"]["chunks"]["total"] >= 2
    assert [(c["name"], c["operationId"], c["durationSeconds"]) for c in marker["chunks"]] == [
        (c["name"], c["operationId"], c["durationSeconds"]) for c in stored["chunks"]]
    assert [(o["name"], o["size"]) for o in marker["outputs"]] == [
        (o["name"], o["size"]) for o in stored["outputs"]]
    assert (marker["startedAt"], marker["endedAt"]) == (stored["startedAt"], stored["endedAt"])
    assert "job" not in marker and "input" not in marker  # settings and ETag stay out
    assert recoservice.key not in resp.text and "sig=" not in resp.text


def test_a_running_run_has_no_marker_until_it_ends(ui_app, reco, items):
    reco.set_faults([STUCK])
    run_id = ui_app.start(seeds(items, 70, 20))
    running = ui_app.wait(run_id, lambda b: bool(b["progress"]["runningChunks"]))

    assert ui_app.call("POST", f"/batches/{run_id}/cancel").status_code == 202
    ended = ui_app.wait_done(run_id)

    assert running["marker"] is None
    assert ended["marker"]["kind"] == "failed" and ended["marker"]["code"] == "Cancelled"
    assert ended["marker"]["message"]


def test_another_runs_marker_in_the_folder_is_not_shown(ui_app, items):
    container = ui_app.container("BATCH_INPUT_CONTAINER")
    ids = []
    for count in (2, 3):  # the same name uploaded twice: the second run owns the folder
        container.upload_blob("again.json", json.dumps({"requests": seeds(items, 90, count)}),
                              overwrite=True)
        resp = ui_app.call("POST", "/batches", json={"input": {"blob": "again.json"}})
        ids.append(resp.json()["instanceId"])
        ui_app.wait_done(ids[-1])

    first, second = (ui_app.call("GET", f"/batches/{i}").json() for i in ids)

    assert first["marker"] is None
    assert second["marker"]["kind"] == "success" and second["marker"]["counts"]["valid"] == 3


def test_the_list_gives_each_run_its_last_update(ui_app, items):
    run_id = ui_app.start(seeds(items, 95, 2))
    ended = ui_app.wait_done(run_id)

    runs = {r["instanceId"]: r for r in ui_app.call("GET", "/batches").json()["runs"]}

    assert runs[run_id]["lastUpdatedTime"] == ended["lastUpdatedTime"]
    assert runs[run_id]["lastUpdatedTime"] >= runs[run_id]["createdTime"]


def test_a_marker_over_the_limit_is_answered_as_too_large_unread(ui_app, items):
    run_id = ui_app.start(seeds(items, 40, 2))
    name = ui_app.wait_done(run_id)["name"]
    huge = json.dumps({"instanceId": run_id, "kind": "success",
                       "chunks": [{"name": "x" * 1000}] * 1100}).encode()
    assert len(huge) > MAX_MARKER_BYTES
    blob = ui_app.container("BATCH_OUTPUT_CONTAINER").get_blob_client(f"{name}/_SUCCESS")
    blob.upload_blob(huge, overwrite=True)

    marker = ui_app.call("GET", f"/batches/{run_id}").json()["marker"]

    assert marker == {"kind": None, "tooLarge": True, "maxBytes": MAX_MARKER_BYTES}


def test_marker_view_keeps_known_fields_only_and_long_names_whole():
    long_name = "d/" + "n" * 1000 + ".json/results.json"
    doc = {"kind": "success", "instanceId": "rb-1", "job": {"modelId": "m"},
           "input": {"etag": "0x1"}, "counts": {"results": 3, "note": "x"},
           "chunks": [{"name": "chunk-00001", "status": "Succeeded", "operationId": "op",
                       "durationSeconds": 1.5, "results": 3, "sasBlobToken": "sig=abc"}],
           "outputs": [{"name": long_name, "size": 10, "md5": "m"}],
           "message": "see https://a.blob.core.windows.net/c/b?sv=1&sig=secret"}

    view = marker_view(doc)

    assert set(view) == {"kind", "code", "message", "rerunOf", "counts", "startedAt",
                         "endedAt", "chunksTotal", "chunks", "outputs"}
    assert view["counts"] == {"results": 3}
    assert set(view["chunks"][0]) == {"name", "status", "operationId", "durationSeconds",
                                      "results", "message", "reused"}
    assert view["outputs"] == [{"name": long_name, "size": 10}]
    assert "secret" not in json.dumps(view)
