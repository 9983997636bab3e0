"""submit_chunk, check_operation, verify_output, cancel_operation, is_cancel_requested against
real Azurite and recoservice with its fault rules."""

from __future__ import annotations

import json

import pytest
from act_helpers import prepare, seed_file, submit, upload, wait_operation

from activities.cancel_operation import run as cancel_operation
from activities.check_operation import run as check_operation
from activities.is_cancel_requested import run as is_cancel_requested
from activities.verify_output import run as verify_output
from recobatch import naming
from recobatch.errors import TransientError, UpstreamRejected, code_of


@pytest.fixture
def prepared(containers, demo_items):
    """One prepared chunk (instance rb-chunk) and its job settings."""
    upload(containers, "c.json", seed_file([{"SeedItems": demo_items[:2]},
                                            {"SeedItems": [demo_items[3]]}]))
    prep = prepare(containers, "c.json", "rb-chunk")
    return prep


def test_busy_service_answers_not_accepted_with_retry_after(reco, prepared):
    reco.set_faults([{"target": "submit", "action": "status", "status": 429, "retryAfter": 3}])

    answer = submit("rb-chunk", "chunk-00001", prepared["job"])

    assert answer["accepted"] is False
    assert answer["retryAfterSeconds"] == 3
    assert "429" in answer["reason"] and "sig=" not in answer["reason"]


def test_second_submit_while_a_job_runs_is_busy_and_cancel_stops_the_first(reco, prepared):
    reco.set_faults([{"target": "job", "action": "stuck"}])
    first = submit("rb-chunk", "chunk-00001", prepared["job"])

    second = submit("rb-chunk", "chunk-00001", prepared["job"])
    cancelled = cancel_operation({"operationId": first["operationId"]})

    assert first["accepted"] is True
    assert second["accepted"] is False and second["retryAfterSeconds"] > 0
    assert cancelled == {"cancelled": True}
    assert wait_operation(first["operationId"])["status"] == "Cancelled"
    assert cancel_operation({"operationId": first["operationId"]}) == {"cancelled": False}


def test_unavailable_submit_is_busy_too(reco, prepared):
    reco.set_faults([{"target": "submit", "action": "status", "status": 503}])

    answer = submit("rb-chunk", "chunk-00001", prepared["job"])

    assert answer["accepted"] is False


def test_submit_500_raises_upstream_unavailable(reco, prepared):
    reco.set_faults([{"target": "submit", "action": "status", "status": 500}])

    with pytest.raises(TransientError) as info:
        submit("rb-chunk", "chunk-00001", prepared["job"])

    assert code_of(str(info.value)) == "UpstreamUnavailable"


def test_submit_with_unknown_model_is_rejected(reco, prepared):
    job = {**prepared["job"], "modelId": "00000000-0000-0000-0000-000000000000"}

    with pytest.raises(UpstreamRejected) as info:
        submit("rb-chunk", "chunk-00001", job)

    assert info.value.status == 404


def test_failed_job_reports_its_message(reco, prepared):
    reco.set_faults([{"target": "job", "action": "fail", "message": "disk full"}])
    answer = submit("rb-chunk", "chunk-00001", prepared["job"])

    state = wait_operation(answer["operationId"])

    assert state["status"] == "Failed"
    assert "disk full" in state["message"]


def test_check_operation_raises_unavailable_after_its_retries(reco, prepared):
    answer = submit("rb-chunk", "chunk-00001", prepared["job"])
    wait_operation(answer["operationId"])
    reco.set_faults([{"target": "status", "action": "status", "status": 500, "count": -1}])

    with pytest.raises(TransientError) as info:
        check_operation({"operationId": answer["operationId"]})

    assert str(info.value).startswith("UpstreamUnavailable: ")


@pytest.mark.parametrize(("fault", "present"), [("skipOutput", False), ("invalidOutput", True)])
def test_verify_output_sees_missing_and_invalid_outputs(reco, prepared, fault, present):
    reco.set_faults([{"target": "job", "action": fault}])
    answer = submit("rb-chunk", "chunk-00001", prepared["job"])
    assert wait_operation(answer["operationId"])["status"] == "Succeeded"

    verified = verify_output({"instanceId": "rb-chunk", "chunk": "chunk-00001",
                              "inputName": "in.json"})

    assert verified["present"] is present
    assert verified["valid"] is False
    assert "chunk-00001" in verified["message"]


def test_resubmit_removes_a_stale_output_first(reco, containers, prepared):
    stale = containers["work"].get_blob_client(naming.chunk_output_blob("rb-chunk", 1))
    stale.upload_blob(json.dumps({"results": [{}, {}]}).encode())
    reco.set_faults([{"target": "job", "action": "skipOutput"}])

    answer = submit("rb-chunk", "chunk-00001", prepared["job"])
    wait_operation(answer["operationId"])

    verified = verify_output({"instanceId": "rb-chunk", "chunk": 1, "inputName": "in.json"})

    assert verified["present"] is False


def test_is_cancel_requested_follows_the_flag_blob(containers, prepared):
    before = is_cancel_requested({"instanceId": "rb-chunk"})
    containers["work"].get_blob_client(naming.cancel_blob("rb-chunk")).upload_blob(b"")

    after = is_cancel_requested({"instanceId": "rb-chunk"})

    assert (before, after) == ({"cancelled": False}, {"cancelled": True})


def test_check_operation_reports_the_run_s_cancel_flag_without_asking_the_service(
        reco, containers, prepared):
    answer = submit("rb-chunk", "chunk-00001", prepared["job"])
    before = check_operation({"operationId": answer["operationId"], "instanceId": "rb-chunk"})
    containers["work"].get_blob_client(naming.cancel_blob("rb-chunk")).upload_blob(b"")
    reco.set_faults([{"target": "status", "action": "status", "status": 500, "count": -1}])

    after = check_operation({"operationId": answer["operationId"], "instanceId": "rb-chunk"})

    assert before["cancelRequested"] is False and before["status"] in (
        "NotStarted", "Running", "Succeeded")
    assert after == {"status": None, "percentComplete": None, "message": "",
                     "cancelRequested": True}


def test_verify_output_for_presence_only_reads_nothing_and_stages_nothing(reco, containers,
                                                                          prepared):
    answer = submit("rb-chunk", "chunk-00001", prepared["job"])
    wait_operation(answer["operationId"])

    found = verify_output({"instanceId": "rb-chunk", "chunk": 1, "inputName": "in.json",
                           "stage": False})

    assert found == {"present": True, "valid": True, "results": 0, "message": "",
                     "staged": False}
    assert not containers["output"].exists() or \
        not list(containers["output"].list_blobs(name_starts_with="in.json/",
                                                 include=["uncommittedblobs"]))
