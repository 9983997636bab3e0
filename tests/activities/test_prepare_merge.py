"""prepare_batch and merge_results against real Azurite (and the service in between)."""

from __future__ import annotations

import json

import pytest
from act_helpers import prepare, seed_file, submit, upload, wait_operation

from activities.merge_results import run as merge_results
from activities.prepare_batch import run as prepare_batch
from activities.verify_output import run as verify_output
from recobatch import naming
from recobatch.errors import InputError, InputTooLargeError


def _work(containers, name: str) -> bytes:
    return containers["work"].get_blob_client(name).download_blob().readall()


def test_prepare_writes_chunks_indices_and_rejections_and_leaves_the_input(containers,
                                                                           set_env):
    set_env("BATCH_MAX_JOB_BYTES", "1024")
    reqs = [{"SeedItems": [f"ITEM-{n:05d}"]} for n in range(100)]
    reqs[7] = {"SeedItems": []}
    etag = upload(containers, "day.json", seed_file(reqs))

    result = prepare(containers, "day.json", "rb-prep")

    assert (result["requests"], result["valid"], result["rejected"]) == (100, 99, 1)
    assert result["etag"] == etag and result["inputName"] == "day.json"
    assert result["job"]["numberOfResults"] == 3 and "modelId" in result["job"]
    assert len(result["chunks"]) > 1
    assert all(c["bytes"] <= 1024 for c in result["chunks"])
    index_blobs = [naming.chunk_index_blob("rb-prep", c["name"]) for c in result["chunks"]]
    indices = [i for name in index_blobs for i in json.loads(_work(containers, name))]
    assert indices == [i for i in range(100) if i != 7]
    first = json.loads(_work(containers, naming.chunk_input_blob("rb-prep", "chunk-00001")))
    assert first["requests"][0] == {"SeedItems": ["ITEM-00000"]}
    rejected = [json.loads(line) for line in
                _work(containers, naming.rejected_blob("rb-prep")).splitlines()]
    assert rejected == [{"index": 7,
                         "message": "request 7: SeedItems must be a non-empty list of strings"}]
    blob = containers["input"].get_blob_client("day.json")
    assert str(blob.get_blob_properties().etag).strip('"') == etag


def test_prepare_refuses_an_oversized_file_before_reading_it(containers, set_env):
    set_env("BATCH_MAX_INPUT_BYTES", "100")
    upload(containers, "big.json", seed_file([{"SeedItems": ["A"]}] * 20))

    with pytest.raises(InputTooLargeError) as info:
        prepare(containers, "big.json", "rb-big")

    assert "InputTooLarge: " in str(info.value)
    assert not list(containers["work"].list_blobs(name_starts_with="rb-big/")) \
        if containers["work"].exists() else True


def test_prepare_fails_whole_on_invalid_json(containers):
    upload(containers, "bad.json", b'{"requests": [')

    with pytest.raises(InputError) as info:
        prepare(containers, "bad.json")

    assert str(info.value).startswith("InvalidInput: the requests file is not valid JSON")


def test_prepare_pins_the_etag_it_was_started_for(containers):
    upload(containers, "v.json", seed_file([{"SeedItems": ["A"]}]))

    with pytest.raises(InputError) as info:
        prepare_batch({"instanceId": "rb-v", "container": containers["input"].container_name,
                       "name": "v.json", "etag": "0x8DEADBEEF"})

    assert "changed" in str(info.value)


def test_payload_without_a_field_is_refused_naming_it(containers):
    with pytest.raises(InputError) as info:
        prepare_batch({"instanceId": "rb-x", "name": "a.json"})

    assert "container" in str(info.value)


def test_full_chunk_round_trip_merges_results_and_errors_in_input_order(containers, set_env,
                                                                       demo_items):
    set_env("BATCH_MAX_JOB_BYTES", "1024")
    reqs = [{"SeedItems": [demo_items[n % len(demo_items)]]} for n in range(60)]
    reqs[3] = {"SeedItems": ["no-such-item"]}  # upstream request-level error
    reqs[10] = {"UserId": "u1"}  # rejected by validation (ItemRecommend)
    upload(containers, "jobs/run.jsonl", "\n".join(json.dumps(r) for r in reqs))
    prep = prepare(containers, "jobs/run.jsonl", "rb-full")
    statuses = []
    parts = {}
    for chunk in prep["chunks"]:
        answer = submit("rb-full", chunk["name"], prep["job"])
        assert answer["accepted"] is True and "sig" not in json.dumps(answer)
        statuses.append(wait_operation(answer["operationId"])["status"])
        verified = verify_output({"instanceId": "rb-full", "chunk": chunk["name"],
                                  "inputName": "jobs/run.jsonl"})
        part = verified.pop("part")
        assert verified == {"present": True, "valid": True, "results": chunk["requests"],
                            "message": ""}
        assert part["results"] == chunk["requests"] and part["blocks"] >= 1
        parts[chunk["name"]] = part

    merged = merge_results({"instanceId": "rb-full",
                            "container": containers["input"].container_name,
                            "inputName": "jobs/run.jsonl", "etag": prep["etag"],
                            "chunks": [{"name": c["name"], "status": "Succeeded",
                                        "part": parts[c["name"]]} for c in prep["chunks"]]})

    assert set(statuses) == {"Succeeded"}
    results_blob = containers["output"].get_blob_client("jobs/run.jsonl/results.json")
    results = json.loads(results_blob.download_blob().readall())["results"]
    assert [r["index"] for r in results] == [i for i in range(60) if i != 10]
    assert [r["request"]["seedItems"] for r in results] == \
        [reqs[i]["SeedItems"] for i in range(60) if i != 10]
    errors = containers["output"].get_blob_client("jobs/run.jsonl/errors.txt").download_blob() \
        .readall().decode().splitlines()
    assert [line.split(":")[0] for line in errors] == ["request 3", "request 10"]
    assert merged["counts"] == {"results": 59, "errors": 2}
    assert merged["results"]["name"] == "jobs/run.jsonl/results.json"
    assert merged["results"]["size"] == results_blob.get_blob_properties().size
    assert merged["results"]["parts"] == len(prep["chunks"])
