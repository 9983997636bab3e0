"""The whole loop: file dropped (or HTTP start) → devhost → recoservice → results and marker."""

from __future__ import annotations

import json
import random
import time

import pytest
import requests

pytestmark = pytest.mark.e2e


def _requests(items: list[str], n: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    return [{"SeedItems": rng.sample(items, rng.randint(1, 3))} for _ in range(n)]


def _jobs_of(reco, since: float) -> list[dict]:
    resp = requests.get(f"{reco.base_url}/batchjobs", headers=reco.headers(), timeout=30)
    resp.raise_for_status()
    jobs = resp.json()["batchJobs"]
    return [j for j in jobs if _epoch(j.get("startedAt") or j.get("createdAt")) >= since]


def _epoch(stamp: str | None) -> float:
    from datetime import datetime

    if not stamp:
        return 0.0
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_seed_example_file_gives_results_in_seed_format_and_success(app_factory, demo_items):
    app = app_factory()
    body = {"requests": [{"SeedItems": demo_items[0:2]}, {"SeedItems": [demo_items[5]]}]}
    etag = app.upload("example.json", json.dumps(body))

    marker, manifest = app.wait_for_marker("example.json")

    assert marker == "_SUCCESS", manifest
    assert manifest["input"]["name"] == "example.json"
    assert manifest["input"]["etag"].strip('"') == etag
    assert manifest["counts"]["requests"] == 2 and manifest["counts"]["results"] == 2
    assert {o["name"].rsplit("/", 1)[-1] for o in manifest["outputs"]} >= {"results.json"}
    results = json.loads(app.read_output("example.json/results.json"))["results"]
    assert [r["request"]["seedItems"] for r in results] == [demo_items[0:2], [demo_items[5]]]
    first = results[0]["recommendations"][0]
    assert set(first) == {"items", "rating", "reasoning"}
    assert set(first["items"][0]) == {"itemId", "name", "metadata"}
    assert first["reasoning"][0].startswith("People who like the selected items also like")
    assert app.read_output("example.json/errors.txt") == b""


def test_five_megabyte_input_is_split_and_merged_in_order(app_factory, demo_items):
    app = app_factory(timer_scale=5.0, RECO_NUMBER_OF_RESULTS="1")
    line_count = 0
    lines = []
    size = 0
    rng = random.Random(3)
    while size < 5_200_000:
        seeds = rng.sample(demo_items, rng.randint(1, 3))
        line = json.dumps({"SeedItems": seeds})
        lines.append(line)
        size += len(line) + 1
        line_count += 1
    reqs = [json.loads(x) for x in lines]
    app.upload("big.jsonl", "\n".join(lines) + "\n")

    marker, manifest = app.wait_for_marker("big.jsonl", timeout=300)

    assert marker == "_SUCCESS", manifest
    assert len(manifest["chunks"]) >= 3
    assert manifest["counts"]["requests"] == line_count
    results = json.loads(app.read_output("big.jsonl/results.json"))["results"]
    assert len(results) == line_count
    assert [r["request"]["seedItems"] for r in results] == [r["SeedItems"] for r in reqs]


def test_http_start_with_inline_requests_reports_progress_and_writes_marker(app_factory,
                                                                            demo_items):
    app = app_factory()
    reqs = _requests(demo_items, 20, seed=4)

    resp = app.post("/batches", json={"input": {"requests": reqs}, "job": {"numberOfResults": 3}})

    assert resp.status_code == 202, resp.text
    instance_id = resp.json()["instanceId"]
    seen = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = app.get(f"/batches/{instance_id}")
        assert status.status_code == 200, status.text
        seen.add(status.json()["runtimeStatus"])
        if status.json()["runtimeStatus"] in ("Completed", "Failed"):
            break
        time.sleep(0.2)
    assert "Completed" in seen, seen
    final = app.get(f"/batches/{instance_id}").json()
    assert final["progress"]["requests"] == 20
    output = final["progress"]["output"]
    stem = output.split("/", 1)[1].rstrip("/") if "/" in output else output
    marker, manifest = app.wait_for_marker(stem)
    assert marker == "_SUCCESS"
    results = json.loads(app.read_output(f"{stem}/results.json"))["results"]
    assert len(results) == 20
    assert all(len(r["recommendations"]) <= 3 for r in results)


def test_bad_http_body_is_rejected_with_a_clear_message(app_factory):
    app = app_factory()

    resp = app.post("/batches", json={"input": {"nothing": 1}})

    assert resp.status_code == 400
    assert "input" in resp.text


def test_cancel_through_http_cancels_upstream_and_writes_cancelled(app_factory, reco,
                                                                   demo_items):
    reco.set_faults([{"target": "job", "action": "stuck", "count": 1}])
    app = app_factory(timer_scale=5.0)
    resp = app.post("/batches", json={"input": {"requests": _requests(demo_items, 5)}})
    assert resp.status_code == 202, resp.text
    instance_id = resp.json()["instanceId"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        progress = app.get(f"/batches/{instance_id}").json().get("progress") or {}
        if (progress.get("chunks") or {}).get("running"):
            break
        time.sleep(0.2)
    time.sleep(1.0)  # let the chunk submit its job upstream

    cancel = app.post(f"/batches/{instance_id}/cancel")

    assert cancel.status_code == 202, cancel.text
    stem = app.get(f"/batches/{instance_id}").json()["progress"]["output"].split("/", 1)[1]
    marker, manifest = app.wait_for_marker(stem.rstrip("/"))
    assert marker == "_FAILED"
    assert manifest["code"] == "Cancelled"
    op_ids = [c.get("operationId") for c in manifest.get("chunks", []) if c.get("operationId")]
    assert op_ids, manifest
    op = requests.get(f"{reco.base_url}/operations/{op_ids[0]}", headers=reco.headers(),
                      timeout=30).json()
    assert op["status"] == "Cancelled"


def test_same_blob_version_runs_once_and_a_new_upload_runs_again(app_factory, demo_items):
    app = app_factory()
    body = json.dumps({"requests": _requests(demo_items, 3, seed=5)})
    app.upload("twice.json", body)
    _, first = app.wait_for_marker("twice.json")

    # A repeated start for the same blob version (what a repeated trigger does) starts nothing.
    again = app.post("/batches", json={"input": {"blob": "twice.json"}})
    assert again.status_code in (200, 202, 409), again.text
    assert again.json()["instanceId"] == first["instanceId"]
    time.sleep(2)
    assert json.loads(app.read_output("twice.json/_SUCCESS"))["instanceId"] == first["instanceId"]

    app.output.delete_blob("twice.json/_SUCCESS")
    etag2 = app.upload("twice.json", body)  # a new upload: new ETag, new run
    _, second = app.wait_for_marker("twice.json")
    assert second["instanceId"] != first["instanceId"]
    assert etag2 in json.dumps(second)


def test_two_files_with_one_job_at_a_time_never_overlap_upstream(app_factory, recoservice,
                                                                 demo_items):
    other_key = next(k for k in recoservice.service.extra["keys"] if k != recoservice.key)
    app = app_factory(key=other_key, RECO_MAX_CONCURRENT_JOBS="1")
    since = time.time() - 1
    app.upload("one.json", json.dumps({"requests": _requests(demo_items, 30, seed=6)}))
    app.upload("two.json", json.dumps({"requests": _requests(demo_items, 30, seed=7)}))

    results = [app.wait_for_marker("one.json", timeout=180),
               app.wait_for_marker("two.json", timeout=180)]

    assert [m for m, _ in results] == ["_SUCCESS", "_SUCCESS"], results
    resp = requests.get(f"{recoservice.base_url}/batchjobs",
                        headers=recoservice.headers(other_key), timeout=30)
    jobs = sorted((j for j in resp.json()["batchJobs"] if _epoch(j.get("startedAt")) >= since),
                  key=lambda j: _epoch(j["startedAt"]))
    assert len(jobs) >= 2
    for before, after in zip(jobs, jobs[1:], strict=False):
        assert _epoch(before["endedAt"]) <= _epoch(after["startedAt"]), (before, after)


def test_devhost_killed_while_polling_resumes_and_finishes_once(app_factory, recoservice,
                                                                demo_items):
    app = app_factory(timer_scale=1.0, POLL_INITIAL_SECONDS="3", POLL_MAX_SECONDS="3")
    since = time.time() - 1
    app.upload("killed.json", json.dumps({"requests": _requests(demo_items, 10, seed=8)}))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _jobs_of(recoservice, since):
        time.sleep(0.1)
    assert _jobs_of(recoservice, since), "the run never submitted its job"
    time.sleep(0.5)

    app.restart(kill=True)

    marker, manifest = app.wait_for_marker("killed.json", timeout=120)
    assert marker == "_SUCCESS", manifest
    names = [b.name for b in app.output.list_blobs(name_starts_with="killed.json/")]
    assert sorted(names) == ["killed.json/_SUCCESS", "killed.json/errors.txt",
                             "killed.json/results.json"]
    assert len(json.loads(app.read_output("killed.json/results.json"))["results"]) == 10


def test_failed_upstream_job_writes_failed_marker(app_factory, reco, demo_items):
    reco.set_faults([{"target": "job", "action": "fail", "message": "model exploded",
                      "count": 1}])
    app = app_factory()
    app.upload("fails.json", json.dumps({"requests": _requests(demo_items, 4, seed=9)}))

    marker, manifest = app.wait_for_marker("fails.json")

    assert marker == "_FAILED"
    assert manifest["code"] == "UpstreamJobFailed"
    assert "model exploded" in json.dumps(manifest)


def test_upstream_job_that_never_finishes_times_out(app_factory, reco, demo_items):
    reco.set_faults([{"target": "job", "action": "stuck", "count": 1}])
    app = app_factory(timer_scale=60.0, JOB_TIMEOUT_MINUTES="1")
    app.upload("stuck.json", json.dumps({"requests": _requests(demo_items, 4, seed=10)}))

    marker, manifest = app.wait_for_marker("stuck.json", timeout=120)

    assert marker == "_FAILED"
    assert manifest["code"] == "JobTimedOut"


def test_invalid_input_fails_without_contacting_the_service(app_factory, recoservice):
    app = app_factory()
    since = time.time() - 1
    app.upload("broken.json", "{not json")

    marker, manifest = app.wait_for_marker("broken.json")

    assert marker == "_FAILED"
    assert manifest["code"] == "InvalidInput"
    assert not _jobs_of(recoservice, since)
    assert app.input.get_blob_client("broken.json").download_blob().readall() == b"{not json"
