"""Re-running a failed run: only the failed chunk is submitted again, and the results are the
bytes of a clean run of the same file."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time

import pytest
import requests

from devhost.services import REPO_ROOT
from recobatch import naming

pytestmark = pytest.mark.e2e


def _body(items: list[str]) -> str:
    rng = random.Random(17)
    reqs = [{"SeedItems": rng.sample(items, rng.randint(1, 3))} for _ in range(120)]
    reqs[5] = {"SeedItems": ["NOT-IN-CATALOG"]}
    reqs[9] = {"nope": 1}  # rejected by validation
    return json.dumps({"requests": reqs, "job": {"numberOfResults": 4}})


def _job_ids(reco) -> set[str]:
    """Every batch job recoservice has received (for this key)."""
    resp = requests.get(f"{reco.base_url}/batchjobs", headers=reco.headers(), timeout=30)
    resp.raise_for_status()
    return {str(j["id"]) for j in resp.json()["batchJobs"]}


def _marker_of(app, stem: str, instance_id: str, timeout: float = 120) -> tuple[str, dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        marker, body = app.wait_for_marker(stem, timeout=timeout)
        if body["instanceId"] == instance_id:
            return marker, body
        time.sleep(0.3)
    raise AssertionError(f"no marker of {instance_id}")


def test_rerun_submits_only_the_failed_chunk_and_matches_a_clean_run(app_factory, reco,
                                                                     demo_items):
    app = app_factory(BATCH_MAX_JOB_BYTES="1024")
    body = _body(demo_items)
    reco.set_faults([{"target": "job", "action": "fail", "message": "model exploded",
                      "count": 1}])
    app.upload("flaky.json", body)
    marker, failed = app.wait_for_marker("flaky.json")
    assert marker == "_FAILED" and failed["code"] == "UpstreamJobFailed", failed
    chunks = [c["name"] for c in failed["chunks"]]
    assert len(chunks) >= 3
    failing = [c["name"] for c in failed["chunks"] if c["status"] != "Succeeded"]
    assert len(failing) == 1
    before = _job_ids(reco)

    resp = app.post(f"/batches/{failed['instanceId']}/rerun")

    assert resp.status_code == 202, resp.text
    rerun_id = resp.json()["instanceId"]
    assert rerun_id == naming.rerun_id(failed["instanceId"])
    assert resp.json()["statusUri"].endswith(f"/api/batches/{rerun_id}")
    marker, done = _marker_of(app, "flaky.json", rerun_id)
    assert marker == "_SUCCESS", done
    assert len(_job_ids(reco) - before) == 1  # only the failed chunk was submitted again
    assert done["rerunOf"] == failed["instanceId"]
    assert {c["name"]: c["reused"] for c in done["chunks"]} == {
        name: name not in failing for name in chunks}
    assert done["job"]["numberOfResults"] == 4
    rerun_results = app.read_output("flaky.json/results.json")
    rerun_errors = app.read_output("flaky.json/errors.txt")

    app.upload("clean.json", body)
    marker, clean = app.wait_for_marker("clean.json")

    assert marker == "_SUCCESS"
    assert rerun_results == app.read_output("clean.json/results.json")
    assert rerun_errors == app.read_output("clean.json/errors.txt")
    assert b"request 9:" in rerun_errors and b"request 5:" in rerun_errors
    again = app.post(f"/batches/{rerun_id}/rerun")
    assert again.status_code == 409 and "succeeded" in again.text
    earlier = app.post(f"/batches/{failed['instanceId']}/rerun")
    assert earlier.status_code == 409 and rerun_id in earlier.text


def test_rerun_refusals(app_factory, reco, demo_items):
    app = app_factory()
    assert app.post("/batches/rb-00000000000000000000000000000000/rerun").status_code == 404
    app.upload("refused.json", "{not json")
    _, refused = app.wait_for_marker("refused.json")
    resp = app.post(f"/batches/{refused['instanceId']}/rerun")
    assert resp.status_code == 409 and "InvalidInput" in resp.text

    reco.set_faults([{"target": "job", "action": "fail", "message": "boom", "count": 1}])
    app.upload("changed.json", json.dumps({"requests": [{"SeedItems": demo_items[:2]}]}))
    _, failed = app.wait_for_marker("changed.json")
    assert failed["kind"] == "failed"
    app.output.delete_blob("changed.json/_FAILED")  # so the new upload's marker is told apart
    app.upload("changed.json", json.dumps({"requests": [{"SeedItems": demo_items[:3]}]}))
    app.wait_for_marker("changed.json")
    # the folder is the new upload's now; its run succeeded
    resp = app.post(f"/batches/{failed['instanceId']}/rerun")
    assert resp.status_code == 409, resp.text


def test_cli_rerun_waits_and_prints_the_marker(app_factory, reco, demo_items, tmp_path):
    app = app_factory()
    reco.set_faults([{"target": "job", "action": "fail", "message": "boom", "count": 1}])
    app.upload("cli.json", json.dumps({"requests": [{"SeedItems": demo_items[:2]}]}))
    _, failed = app.wait_for_marker("cli.json")
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"Values": app.settings}))
    env_key = {"RECOBATCH_FUNCTION_KEY": app.settings["DEVHOST_MASTER_KEY"]}

    done = subprocess.run(
        [sys.executable, "-m", "recobatch", "rerun", failed["instanceId"], "--wait",
         "--api", app.api, "--timeout", "120", "--settings", str(settings)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=180, check=False,
        env={**__import__("os").environ, **env_key})

    assert done.returncode == 0, done.stdout + done.stderr
    assert "cli.json/_SUCCESS" in done.stdout and failed["instanceId"] in done.stdout
    assert env_key["RECOBATCH_FUNCTION_KEY"] not in done.stdout + done.stderr


def test_a_cancelled_run_is_rerun_in_full_and_its_cancel_flag_does_not_stop_the_rerun(
        app_factory, reco, demo_items):
    reco.set_faults([{"target": "job", "action": "stuck", "count": 1}])
    app = app_factory(timer_scale=5.0, BATCH_MAX_JOB_BYTES="1024")
    app.upload("stopped.json", _body(demo_items))
    first = naming.instance_id(app.settings["BATCH_INPUT_CONTAINER"], "stopped.json",
                               str(app.input.get_blob_client("stopped.json")
                                   .get_blob_properties().etag).strip('"'))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        progress = app.get(f"/batches/{first}").json().get("progress") or {}
        if (progress.get("chunks") or {}).get("running"):
            break
        time.sleep(0.2)
    time.sleep(1.0)  # let the chunk submit its job
    assert app.post(f"/batches/{first}/cancel").status_code == 202
    marker, cancelled = app.wait_for_marker("stopped.json")
    assert marker == "_FAILED" and cancelled["code"] == "Cancelled"
    before = _job_ids(reco)

    resp = app.post(f"/batches/{first}/rerun")

    assert resp.status_code == 202, resp.text
    marker, done = _marker_of(app, "stopped.json", resp.json()["instanceId"])
    assert marker == "_SUCCESS", done
    assert not any(c["reused"] for c in done["chunks"])  # nothing had succeeded
    assert len(_job_ids(reco) - before) == len(done["chunks"])
