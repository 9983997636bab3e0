"""Batch jobs over real HTTP against recoservice, with real blobs in Azurite."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from azure.storage.blob import BlobSasPermissions, generate_blob_sas

from recoservice.state import RESTART_MESSAGE

TERMINAL = ("Succeeded", "Failed", "Cancelled")


# ------------------------------------------------------------------------------- helpers


def _account(container: Any) -> tuple[str, str, str]:
    """(blob endpoint with trailing slash, account name, account key) of a container client."""
    cred = container.credential
    endpoint = container.url.rsplit("/", 1)[0] + "/"
    return endpoint, cred.account_name, cred.account_key


def location(container: Any, blob: str, permission: str) -> dict[str, str]:
    """A v4 PublicOrSas location for ``blob`` with a SAS token of ``permission``."""
    endpoint, account, key = _account(container)
    token = generate_blob_sas(
        account_name=account, container_name=container.container_name, blob_name=blob,
        account_key=key, permission=BlobSasPermissions.from_string(permission),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    return {"authenticationType": "PublicOrSas", "baseLocation": endpoint,
            "relativeLocation": f"{container.container_name}/{blob}", "sasBlobToken": "?" + token}


def job_body(reco: Any, container: Any, prefix: str = "job", **job: Any) -> dict[str, Any]:
    return {
        "input": location(container, f"{prefix}/input.json", "r"),
        "output": location(container, f"{prefix}/output.json", "cw"),
        "error": location(container, f"{prefix}/errors.txt", "cw"),
        "job": {"apiName": "ItemRecommend", "modelId": reco.demo_model_id,
                "numberOfResults": 5, "includeMetadata": False, "minimalScore": 0.0, **job},
    }


def put_input(container: Any, doc: Any, prefix: str = "job") -> None:
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    container.upload_blob(f"{prefix}/input.json", data, overwrite=True)


def submit(reco: Any, body: dict[str, Any], key: str | None = None) -> requests.Response:
    return requests.post(f"{reco.base_url}/batchjobs", json=body, headers=reco.headers(key),
                         timeout=30)


def get_op(reco: Any, op_url: str, key: str | None = None) -> dict[str, Any]:
    resp = requests.get(op_url, headers=reco.headers(key), timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def wait_op(reco: Any, op_url: str, until: tuple[str, ...] = TERMINAL, timeout: float = 60,
            key: str | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        op = get_op(reco, op_url, key)
        if op["status"] in until or time.monotonic() > deadline:
            return op
        time.sleep(0.1)


def run_job(reco: Any, container: Any, doc: Any, prefix: str = "job",
            **job: Any) -> dict[str, Any]:
    put_input(container, doc, prefix)
    resp = submit(reco, job_body(reco, container, prefix, **job))
    assert resp.status_code == 202, resp.text
    return wait_op(reco, resp.headers["Operation-Location"])


def read_blob(container: Any, name: str) -> bytes:
    return container.get_blob_client(name).download_blob().readall()


def catalog_ids(reco: Any, n: int = 6) -> list[str]:
    resp = requests.get(f"{reco.base_url}/models/{reco.demo_model_id}/catalog",
                        params={"$top": 50}, headers=reco.headers(), timeout=30)
    assert resp.status_code == 200, resp.text
    ids = [item["id"] for item in resp.json()["value"]]
    assert len(ids) >= n
    return ids[:n]


def cancel(reco: Any, op_url: str, key: str | None = None) -> None:
    resp = requests.delete(op_url, headers=reco.headers(key), timeout=30)
    assert resp.status_code in (200, 202, 204), resp.text


# ------------------------------------------------------------------------------- success


def test_item_job_writes_the_documented_output_one_result_per_request_in_order(reco, container):
    ids = catalog_ids(reco)
    doc = {"requests": [{"SeedItems": [ids[0], ids[1]]}, {"SeedItems": [ids[2]]},
                        {"SeedItems": [ids[3]]}]}

    put_input(container, doc)
    resp = submit(reco, job_body(reco, container))
    assert resp.status_code == 202, resp.text
    assert resp.headers["Operation-Location"].startswith("http://127.0.0.1:")
    assert isinstance(resp.json()["batchId"], str) and resp.json()["batchId"]
    op = wait_op(reco, resp.headers["Operation-Location"])

    assert op["status"] == "Succeeded", op
    assert op["percentComplete"] == 100
    out = json.loads(read_blob(container, "job/output.json"))
    assert list(out) == ["results"]
    assert [r["request"] for r in out["results"]] == [
        {"seedItems": [ids[0], ids[1]]}, {"seedItems": [ids[2]]}, {"seedItems": [ids[3]]}]
    for result in out["results"]:
        assert set(result) == {"request", "recommendations"}
        assert 1 <= len(result["recommendations"]) <= 5
        for rec in result["recommendations"]:
            assert set(rec) == {"items", "rating", "reasoning"}
            assert len(rec["items"]) == 1
            assert set(rec["items"][0]) == {"itemId", "name", "metadata"}
            assert isinstance(rec["rating"], float)
            assert isinstance(rec["reasoning"], list) and rec["reasoning"]
    assert read_blob(container, "job/errors.txt") == b""


def test_user_job_echoes_user_ids(reco, container):
    # The demo model's usage comes from recoservice.synth: users USR-000000, USR-000001, ...
    doc = {"requests": [{"UserId": "USR-000001"}, {"UserId": "USR-000002"}, {},
                        {"UserId": "nobody-at-all"}]}

    op = run_job(reco, container, doc, apiName="UserRecommend")

    assert op["status"] == "Succeeded", op
    out = json.loads(read_blob(container, "job/output.json"))
    assert [r["request"] for r in out["results"]] == [
        {"userId": "USR-000001"}, {"userId": "USR-000002"}, {"userId": None},
        {"userId": "nobody-at-all"}]
    assert out["results"][0]["recommendations"] and out["results"][1]["recommendations"]
    assert out["results"][3]["recommendations"] == []
    errors = read_blob(container, "job/errors.txt").decode().splitlines()
    assert errors[0] == "request 2: UserId missing"
    assert errors[1].startswith("request 3: ") and len(errors) == 2


def test_request_level_problems_go_to_the_error_blob_and_the_job_succeeds(reco, container):
    ids = catalog_ids(reco)
    doc = {"requests": [{"SeedItems": [ids[0]]}, {"Seeds": [ids[1]]}, {"SeedItems": ids[2]},
                        {"SeedItems": ["no-such-item-xyz"]}, {"SeedItems": [ids[1]]}]}

    op = run_job(reco, container, doc)

    assert op["status"] == "Succeeded", op
    out = json.loads(read_blob(container, "job/output.json"))
    assert len(out["results"]) == 5
    assert out["results"][0]["recommendations"] and out["results"][4]["recommendations"]
    assert out["results"][1]["recommendations"] == []
    lines = read_blob(container, "job/errors.txt").decode().splitlines()
    assert lines[0] == "request 1: SeedItems missing"
    assert lines[1] == "request 2: SeedItems is not a list"
    assert lines[2].startswith("request 3: ")
    assert len(lines) == 3


# ------------------------------------------------------------------------------- failures


def test_input_over_2_mb_fails_the_job_with_its_size(reco, container):
    ids = catalog_ids(reco)
    one = {"SeedItems": [ids[0]]}
    n = 2_097_152 // len(json.dumps(one)) + 10
    data = json.dumps({"requests": [one] * n}).encode()
    assert len(data) > 2_097_152

    op = run_job(reco, container, data)

    assert op["status"] == "Failed"
    assert f"{len(data):,}" in op["message"] and "2 MB" in op["message"]


@pytest.mark.parametrize(("size", "status"), [(2_097_152, "Succeeded"),
                                              (2_097_153, "Failed")])
def test_input_limit_is_2_097_152_bytes_exactly(reco, container, size, status):
    ids = catalog_ids(reco)
    head = json.dumps({"requests": [{"SeedItems": [i]} for i in ids[:3]]}).encode()
    data = head[:-1] + b" " * (size - len(head)) + b"}"   # JSON whitespace up to the size
    assert len(data) == size

    op = run_job(reco, container, data, prefix=f"limit{size}")

    assert op["status"] == status, op["message"]


def test_malformed_json_fails_the_job(reco, container):
    op = run_job(reco, container, b'{"requests": [ {"SeedItems": ')

    assert op["status"] == "Failed"
    assert "JSON" in op["message"]


def test_json_without_requests_list_fails_the_job(reco, container):
    op = run_job(reco, container, {"items": []})

    assert op["status"] == "Failed"
    assert "requests" in op["message"]


def test_missing_input_blob_fails_without_leaking_the_sas_token(reco, container):
    body = job_body(reco, container, prefix="absent")

    resp = submit(reco, body)
    op = wait_op(reco, resp.headers["Operation-Location"])

    assert op["status"] == "Failed"
    token = body["input"]["sasBlobToken"]
    assert token[1:] not in json.dumps(op)
    assert "sig=" not in op["message"]


# ------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda b: b.pop("input"), "input"),
    (lambda b: b["output"].update(authenticationType="Key"), "output.authenticationType"),
    (lambda b: b["error"].update(sasBlobToken="sv=2020&sig=x"), "error.sasBlobToken"),
    (lambda b: b["job"].update(apiName="ItemFbtRecommend"), "job.apiName"),
    (lambda b: b["job"].update(numberOfResults=0), "job.numberOfResults"),
    (lambda b: b["job"].update(numberOfResults=101), "job.numberOfResults"),
    (lambda b: b["input"].pop("relativeLocation"), "input.relativeLocation"),
    (lambda b: b["job"].update(buildId=1000001.5), "job.buildId"),
    (lambda b: b["job"].update(buildId=True), "job.buildId"),
])
def test_invalid_submit_is_400_naming_the_field(reco, container, mutate, field):
    body = job_body(reco, container)
    mutate(body)

    resp = submit(reco, body)

    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "BadArgument"
    assert field in resp.json()["error"]["message"]


def test_unknown_model_is_404(reco, container):
    resp = submit(reco, job_body(reco, container, modelId="00000000-0000-0000-0000-000000000000"))

    assert resp.status_code == 404
    assert "00000000-0000-0000-0000-000000000000" in resp.json()["error"]["message"]


def test_submit_without_key_is_401(reco, container):
    resp = requests.post(f"{reco.base_url}/batchjobs", json=job_body(reco, container),
                         timeout=30)

    assert resp.status_code == 401


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    do_HEAD = do_GET
    do_PUT = do_GET

    def log_message(self, *args: Any) -> None:
        pass


def test_blob_host_not_allowed_is_400_naming_it_and_nothing_is_fetched(reco, container):
    # 127.0.0.2 is loopback but not in recoservice's default allowed hosts.
    server = ThreadingHTTPServer(("127.0.0.2", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        body = job_body(reco, container)
        body["input"]["baseLocation"] = f"http://127.0.0.2:{server.server_port}/acct/"

        resp = submit(reco, body)
        time.sleep(1.0)

        assert resp.status_code == 400
        assert "127.0.0.2" in resp.json()["error"]["message"]
        assert _Recorder.hits == []
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------------- concurrency


def test_second_job_of_a_key_is_409_while_the_first_runs(reco, container):
    other_key = next(k for k in reco.service.extra["keys"] if k != reco.key)
    ids = catalog_ids(reco)
    put_input(container, {"requests": [{"SeedItems": [ids[0]]}]})
    reco.set_faults([{"target": "job", "action": "stuck"}])
    first = submit(reco, job_body(reco, container))
    assert first.status_code == 202, first.text
    wait_op(reco, first.headers["Operation-Location"], until=("Running",))

    second = submit(reco, job_body(reco, container))
    other = submit(reco, job_body(reco, container, prefix="job"), key=other_key)

    cancel(reco, first.headers["Operation-Location"])
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "Conflict"
    assert other.status_code == 202, other.text
    assert wait_op(reco, other.headers["Operation-Location"],
                   key=other_key)["status"] == "Succeeded"
    assert wait_op(reco, first.headers["Operation-Location"])["status"] == "Cancelled"


def test_jobs_of_one_key_never_overlap_and_list_hides_tokens(reco, container):
    ids = catalog_ids(reco)
    put_input(container, {"requests": [{"SeedItems": [ids[0]]}]})
    ops = []
    for _ in range(2):
        resp = submit(reco, job_body(reco, container))
        assert resp.status_code == 202, resp.text
        ops.append(resp.json()["batchId"])
        wait_op(reco, resp.headers["Operation-Location"])

    listing = requests.get(f"{reco.base_url}/batchjobs", headers=reco.headers(), timeout=30)

    assert listing.status_code == 200
    jobs = {j["id"]: j for j in listing.json()["batchJobs"]}
    first, second = jobs[ops[0]], jobs[ops[1]]
    assert first["status"] == second["status"] == "Succeeded"
    assert first["endedAt"] <= second["startedAt"]
    assert "sig=" not in listing.text
    assert first["requestinfo"]["input"]["sasBlobToken"] == "***"
    assert first["requestinfo"]["job"]["apiName"] == "ItemRecommend"
    assert all(j["status"] in ("Registered", "Ready", "InProgress", "Canceling", "Canceled",
                               "Succeeded", "Failed") for j in jobs.values())


def test_cancel_a_running_job_ends_cancelled_and_listing_says_canceled(reco, container):
    ids = catalog_ids(reco)
    put_input(container, {"requests": [{"SeedItems": [ids[0]]}]})
    reco.set_faults([{"target": "job", "action": "stuck"}])
    resp = submit(reco, job_body(reco, container))
    op_url = resp.headers["Operation-Location"]
    assert wait_op(reco, op_url, until=("Running",))["status"] == "Running"

    cancel(reco, op_url)
    op = wait_op(reco, op_url)

    assert op["status"] == "Cancelled"
    listing = requests.get(f"{reco.base_url}/batchjobs", headers=reco.headers(), timeout=30)
    job = next(j for j in listing.json()["batchJobs"] if j["id"] == resp.json()["batchId"])
    assert job["status"] == "Canceled"


def test_service_stays_responsive_while_a_job_runs(reco, container):
    ids = catalog_ids(reco)
    put_input(container, {"requests": [{"SeedItems": [ids[0]]}]})
    reco.set_faults([{"target": "job", "action": "stuck"}])
    resp = submit(reco, job_body(reco, container))
    op_url = resp.headers["Operation-Location"]
    wait_op(reco, op_url, until=("Running",))

    started = time.monotonic()
    listing = requests.get(f"{reco.base_url}/batchjobs", headers=reco.headers(), timeout=30)
    elapsed = time.monotonic() - started

    cancel(reco, op_url)
    wait_op(reco, op_url)
    assert listing.status_code == 200
    assert elapsed < 1.0


# ------------------------------------------------------------------------------- job faults


def test_job_fault_fail_ends_failed_with_the_message(reco, container):
    reco.set_faults([{"target": "job", "action": "fail", "message": "disk on fire"}])

    op = run_job(reco, container, {"requests": [{"SeedItems": catalog_ids(reco)[:1]}]})

    assert op["status"] == "Failed"
    assert op["message"] == "disk on fire"


def test_job_fault_skip_output_succeeds_without_output_blob(reco, container):
    reco.set_faults([{"target": "job", "action": "skipOutput"}])

    op = run_job(reco, container, {"requests": [{"SeedItems": catalog_ids(reco)[:1]}]})

    assert op["status"] == "Succeeded"
    assert not container.get_blob_client("job/output.json").exists()


def test_job_fault_invalid_output_writes_non_json(reco, container):
    reco.set_faults([{"target": "job", "action": "invalidOutput"}])

    op = run_job(reco, container, {"requests": [{"SeedItems": catalog_ids(reco)[:1]}]})

    assert op["status"] == "Succeeded"
    with pytest.raises(json.JSONDecodeError):
        json.loads(read_blob(container, "job/output.json"))


def test_job_fault_count_two_fails_two_jobs_then_the_third_succeeds(reco, container):
    reco.set_faults([{"target": "job", "action": "fail", "count": 2}])
    doc = {"requests": [{"SeedItems": catalog_ids(reco)[:1]}]}

    statuses = [run_job(reco, container, doc)["status"] for _ in range(3)]

    assert statuses == ["Failed", "Failed", "Succeeded"]


def test_running_job_is_failed_after_a_restart(recoservice_factory, container, tmp_path):
    first = recoservice_factory(tmp_path / "svc", demo=True)
    ids = catalog_ids(first)
    put_input(container, {"requests": [{"SeedItems": [ids[0]]}]})
    first.set_faults([{"target": "job", "action": "stuck"}])
    resp = submit(first, job_body(first, container))
    assert resp.status_code == 202, resp.text
    op_id = resp.headers["Operation-Location"].rsplit("/", 1)[1]
    assert wait_op(first, resp.headers["Operation-Location"], until=("Running",))["status"] \
        == "Running"

    first.service.stop()
    second = recoservice_factory(tmp_path / "svc", demo=True)
    op = get_op(second, f"{second.base_url}/operations/{op_id}")

    assert op["status"] == "Failed"
    assert op["message"] == RESTART_MESSAGE
    listing = requests.get(f"{second.base_url}/batchjobs", headers=second.headers(), timeout=30)
    job = next(j for j in listing.json()["batchJobs"] if j["id"] == resp.json()["batchId"])
    assert job["status"] == "Failed" and job["endedAt"]
    # The key is free again: a new job is accepted.
    again = submit(second, job_body(second, container))
    assert again.status_code == 202, again.text
    assert wait_op(second, again.headers["Operation-Location"])["status"] == "Succeeded"


# ------------------------------------------------------------------------------- secrets


def test_output_not_writable_fails_and_no_sas_reaches_status_listing_or_log(reco, container):
    ids = catalog_ids(reco)
    put_input(container, {"requests": [{"SeedItems": [ids[0]]}]})
    body = job_body(reco, container)
    body["output"] = location(container, "job/output.json", "r")  # read-only: upload fails

    resp = submit(reco, body)
    op = wait_op(reco, resp.headers["Operation-Location"])
    listing = requests.get(f"{reco.base_url}/batchjobs", headers=reco.headers(), timeout=30)

    assert op["status"] == "Failed"
    assert "job/output.json" in op["message"]
    signatures = [body[name]["sasBlobToken"].split("sig=")[1].split("&")[0]
                  for name in ("input", "output", "error")]
    log_text = reco.service.log.read_text(errors="replace")
    for sig in signatures:
        assert sig not in json.dumps(op)
        assert sig not in listing.text
        assert sig not in log_text


def test_jobs_are_private_to_their_key_and_resource_location_shows_the_job(reco, container):
    other_key = next(k for k in reco.service.extra["keys"] if k != reco.key)
    put_input(container, {"requests": []})
    resp = submit(reco, job_body(reco, container))
    op = wait_op(reco, resp.headers["Operation-Location"])
    batch_id = resp.json()["batchId"]

    mine = requests.get(op["resourceLocation"], headers=reco.headers(), timeout=30)
    theirs = requests.get(op["resourceLocation"], headers=reco.headers(other_key), timeout=30)
    their_list = requests.get(f"{reco.base_url}/batchjobs", headers=reco.headers(other_key),
                              timeout=30)

    assert op["status"] == "Succeeded"
    assert mine.status_code == 200 and mine.json()["id"] == batch_id
    assert mine.json()["status"] == "Succeeded"
    assert theirs.status_code == 404
    assert batch_id not in their_list.text
