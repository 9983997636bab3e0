"""Client error mapping against the real recoservice (fault rules) and a dead port."""

from __future__ import annotations

import json
import time

import pytest

from devhost.services import free_port
from recobatch import storage
from recobatch.client import RecoClient, retry_after_seconds
from recobatch.errors import BusyError, TransientError, UpstreamRejected


@pytest.fixture
def job_blobs(container, demo_items):
    """An input blob with two requests and SAS locations for input, output and error."""
    blob = container.get_blob_client("in.json")
    blob.upload_blob(json.dumps({"requests": [{"SeedItems": demo_items[:2]},
                                              {"SeedItems": ["no-such-item"]}]}).encode())
    expiry = storage.sas_expiry(30)
    return {
        "input": storage.sas_location(blob, "r", expiry),
        "output": storage.sas_location(container.get_blob_client("out.json"), "cw", expiry),
        "error": storage.sas_location(container.get_blob_client("err.txt"), "cw", expiry),
        "container": container,
    }


def _job(reco) -> dict:
    return {"apiName": "ItemRecommend", "modelId": reco.demo_model_id, "numberOfResults": 3,
            "includeMetadata": False, "minimalScore": 0.0}


def _submit(client: RecoClient, blobs: dict, reco):
    return client.submit_batch(blobs["input"], blobs["output"], blobs["error"], _job(reco))


def _wait(client: RecoClient, operation_id: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get_operation(operation_id).status
        if status in ("Succeeded", "Failed", "Cancelled"):
            return status
        time.sleep(0.2)
    raise AssertionError(f"operation {operation_id} still running")


def test_submit_track_and_read_output(reco, job_blobs):
    client = RecoClient(reco.base_url, reco.key)

    submission = _submit(client, job_blobs, reco)

    assert submission.operation_id and submission.batch_id
    assert _wait(client, submission.operation_id) == "Succeeded"
    out = json.loads(job_blobs["container"].get_blob_client("out.json").download_blob().readall())
    assert len(out["results"]) == 2
    errors = job_blobs["container"].get_blob_client("err.txt").download_blob().readall()
    assert errors.decode().startswith("request 1:")


def test_wrong_key_is_rejected_without_showing_the_key(reco):
    client = RecoClient(reco.base_url, "wrong-key-123456")

    with pytest.raises(UpstreamRejected) as info:
        client.get_operation("whatever")

    assert info.value.status == 401
    assert "wrong-key-123456" not in str(info.value)
    assert str(info.value).startswith("UpstreamRejected: ")


def test_unknown_operation_is_rejected_404(reco):
    client = RecoClient(reco.base_url, reco.key)

    with pytest.raises(UpstreamRejected) as info:
        client.get_operation("no-such-operation")

    assert info.value.status == 404
    assert info.value.operation_id == "no-such-operation"


def test_bad_submit_is_rejected_400_without_sas_in_message(reco, job_blobs):
    client = RecoClient(reco.base_url, reco.key)
    job = {**_job(reco), "numberOfResults": 0}

    with pytest.raises(UpstreamRejected) as info:
        client.submit_batch(job_blobs["input"], job_blobs["output"], job_blobs["error"], job)

    assert info.value.status == 400
    assert "sig=" not in str(info.value) or "sig=***" in str(info.value)


def test_second_job_while_one_runs_is_busy_409_and_cancel_works(reco, job_blobs):
    reco.set_faults([{"target": "job", "action": "stuck"}])
    client = RecoClient(reco.base_url, reco.key)
    first = _submit(client, job_blobs, reco)

    with pytest.raises(BusyError) as info:
        _submit(client, job_blobs, reco)

    assert info.value.status == 409
    assert info.value.code == "UpstreamUnavailable"
    assert client.cancel_operation(first.operation_id) is True
    assert _wait(client, first.operation_id) == "Cancelled"
    assert client.cancel_operation(first.operation_id) is False


def test_throttled_submit_is_busy_with_retry_after(reco, job_blobs):
    reco.set_faults([{"target": "submit", "action": "status", "status": 429, "retryAfter": 7}])
    client = RecoClient(reco.base_url, reco.key)

    with pytest.raises(BusyError) as info:
        _submit(client, job_blobs, reco)

    assert info.value.status == 429
    assert info.value.retry_after == 7


@pytest.mark.parametrize("status", [500, 503])
def test_submit_5xx_is_transient_and_not_retried(reco, job_blobs, status):
    reco.set_faults([{"target": "submit", "action": "status", "status": status}])
    client = RecoClient(reco.base_url, reco.key)

    with pytest.raises(TransientError) as info:
        _submit(client, job_blobs, reco)

    assert info.value.status == status
    assert str(info.value).startswith("UpstreamUnavailable: ")
    assert _wait(client, _submit(client, job_blobs, reco).operation_id) == "Succeeded"


def test_status_5xx_is_retried_by_policy_then_succeeds(reco, job_blobs):
    client = RecoClient(reco.base_url, reco.key, backoff=0.05)
    op = _submit(client, job_blobs, reco).operation_id
    reco.set_faults([{"target": "status", "action": "status", "status": 500, "count": 2}])

    operation = client.get_operation(op)

    assert operation.status in ("NotStarted", "Running", "Succeeded")
    _wait(client, op)


def test_status_5xx_forever_is_transient_after_retries(reco, job_blobs):
    client = RecoClient(reco.base_url, reco.key, retries=2, backoff=0.05)
    op = _submit(client, job_blobs, reco).operation_id
    _wait(client, op)
    reco.set_faults([{"target": "status", "action": "status", "status": 500, "count": -1}])

    with pytest.raises(TransientError) as info:
        client.get_operation(op)

    assert info.value.status == 500


def test_hanging_status_times_out_as_transient(reco, job_blobs):
    client = RecoClient(reco.base_url, reco.key, timeout=(2.0, 0.5), retries=0)
    op = _submit(client, job_blobs, reco).operation_id
    _wait(client, op)
    reco.set_faults([{"target": "status", "action": "hang", "seconds": 3, "count": 1}])

    with pytest.raises(TransientError) as info:
        client.get_operation(op)

    assert "did not answer" in str(info.value)


def test_no_service_is_transient():
    client = RecoClient(f"http://127.0.0.1:{free_port()}/recommendations/v4.0", "k", retries=0)

    with pytest.raises(TransientError) as info:
        client.get_operation("op")

    assert "cannot reach" in str(info.value)


def test_retry_after_parses_seconds_and_dates():
    assert retry_after_seconds("12") == 12
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0
