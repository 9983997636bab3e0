"""prepare_rerun on Azurite: what a re-run reuses, and when it refuses."""

from __future__ import annotations

import json

import pytest

from activities.prepare_rerun import run as prepare_rerun
from recobatch import naming
from recobatch.errors import StorageError, SupersededError
from tests.activities.act_helpers import prepare, seed_file, upload

EARLIER = "rb-earlier"


def _setup(containers, demo_items) -> tuple[str, dict]:
    etag = upload(containers, "re.json", seed_file([{"SeedItems": [i]} for i in demo_items[:3]]))
    prep = prepare(containers, "re.json", EARLIER)
    return etag, prep


def _marker(containers, instance: str, statuses: dict[str, str]) -> None:
    out = containers["output"]
    if not out.exists():
        out.create_container()
    out.upload_blob(naming.failed_marker_blob("re.json"), json.dumps({
        "kind": "failed", "instanceId": instance,
        "chunks": [{"name": n, "status": s, "operationId": f"op-{n}", "results": 3,
                    "startedAt": "a", "endedAt": "b"} for n, s in statuses.items()]}),
        overwrite=True)


def _payload(containers, etag: str) -> dict:
    return {"instanceId": "rb-new", "rerunOf": EARLIER, "workId": EARLIER,
            "container": containers["input"].container_name, "inputName": "re.json",
            "etag": etag}


def test_succeeded_chunks_with_their_output_are_reused(containers, demo_items):
    etag, prep = _setup(containers, demo_items)
    chunk = prep["chunks"][0]["name"]
    containers["work"].upload_blob(naming.chunk_output_blob(EARLIER, chunk), b'{"results":[]}')
    _marker(containers, EARLIER, {chunk: "Succeeded"})

    found = prepare_rerun(_payload(containers, etag))

    assert found["chunks"] == prep["chunks"] and found["job"] == prep["job"]
    assert found["reused"] == [{"chunk": chunk, "operationId": f"op-{chunk}",
                                "startedAt": "a", "endedAt": "b", "results": 3}]


def test_nothing_is_reused_when_the_output_or_the_marker_is_not_there(containers, demo_items):
    etag, prep = _setup(containers, demo_items)
    chunk = prep["chunks"][0]["name"]
    _marker(containers, EARLIER, {chunk: "Succeeded"})  # but no output blob

    assert prepare_rerun(_payload(containers, etag))["reused"] == []
    _marker(containers, "rb-someone-else", {chunk: "Succeeded"})
    containers["work"].upload_blob(naming.chunk_output_blob(EARLIER, chunk), b'{"results":[]}')
    assert prepare_rerun(_payload(containers, etag))["reused"] == []


def test_a_changed_input_is_superseded_and_missing_work_is_a_storage_error(containers,
                                                                          demo_items):
    etag, _ = _setup(containers, demo_items)
    containers["work"].delete_blob(naming.prepared_blob(EARLIER))
    with pytest.raises(StorageError, match="prepared chunks"):
        prepare_rerun(_payload(containers, etag))

    upload(containers, "re.json", seed_file([{"SeedItems": [demo_items[0]]}]))
    with pytest.raises(SupersededError):
        prepare_rerun(_payload(containers, etag))
