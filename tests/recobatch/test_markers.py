"""Marker documents: the fields a reader relies on, no secrets, exactly one marker left."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from recobatch import markers

CHUNKS = [
    {"chunk": "chunk-00001", "status": "Succeeded", "operationId": "op1", "message": "",
     "startedAt": "2026-01-01T00:00:00+00:00", "endedAt": "2026-01-01T00:01:30+00:00",
     "results": 10},
    {"chunk": "chunk-00002", "status": "Failed", "operationId": "op2",
     "message": "disk full", "startedAt": "2026-01-01T00:01:30+00:00",
     "endedAt": "2026-01-01T00:02:00+00:00", "results": 0},
]
OUTPUTS = [{"name": "a/results.json", "size": 10, "md5": "x=="},
           {"name": "a/errors.txt", "size": 0, "md5": "y=="}]


def test_success_marker_holds_input_job_counts_chunks_and_outputs():
    doc = markers.success_marker(
        instance_id="rb-1", input_name="a.json", etag="0x1", size=123, container="batch-input",
        job={"apiName": "ItemRecommend", "modelId": "m"},
        counts={"requests": 12, "valid": 10, "rejected": 2, "results": 10, "errors": 3},
        chunks=CHUNKS[:1], outputs=OUTPUTS, started_at="s", ended_at="e")

    assert doc["kind"] == "success"
    assert doc["input"] == {"container": "batch-input", "name": "a.json", "etag": "0x1",
                            "size": 123}
    assert doc["counts"]["errors"] == 3
    assert doc["chunks"][0]["operationId"] == "op1"
    assert doc["chunks"][0]["durationSeconds"] == 90.0
    assert doc["outputs"][0] == {"name": "a/results.json", "size": 10, "md5": "x=="}
    assert (doc["startedAt"], doc["endedAt"]) == ("s", "e")


def test_failed_marker_has_stable_code_message_failing_chunks_and_partial_results():
    doc = markers.failed_marker(instance_id="rb-1", input_name="a.json",
                                code="UpstreamJobFailed", message="chunk-00002 failed.",
                                chunks=CHUNKS, outputs=OUTPUTS)

    assert (doc["kind"], doc["code"], doc["message"]) == ("failed", "UpstreamJobFailed",
                                                          "chunk-00002 failed.")
    assert [c["name"] for c in doc["failedChunks"]] == ["chunk-00002"]
    assert doc["failedChunks"][0]["message"] == "disk full"
    assert doc["partialResults"] == OUTPUTS
    assert markers.failed_marker(instance_id="i", input_name="a", code="Weird",
                                 message="m")["code"] == "InternalError"


def test_write_marker_scrubs_secrets_and_leaves_one_marker(container):
    marker = markers.failed_marker(instance_id="rb-1", input_name="d/a.json",
                                   code="Cancelled",
                                   message="see https://x/b?sv=1&sig=SECRETSIG")
    marker["input"]["sasBlobToken"] = "?sig=SECRETSIG"
    now = datetime(2026, 1, 2, tzinfo=UTC)

    failed = markers.write_marker(container, "failed", "d/a.json", marker, now=now)
    body = container.get_blob_client(failed).download_blob().readall().decode()
    success = markers.write_marker(container, "success", "d/a.json", {"kind": "success"})

    assert failed == "d/a.json/_FAILED" and success == "d/a.json/_SUCCESS"
    assert "SECRETSIG" not in body
    doc = json.loads(body)
    assert doc["writtenAt"] == now.isoformat() and doc["inputName"] == "d/a.json"
    assert sorted(b.name for b in container.list_blobs(name_starts_with="d/a.json/")) == \
        ["d/a.json/_SUCCESS"]
