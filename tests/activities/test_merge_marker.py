"""merge_results with a failed chunk (partial results) and write_marker, on real Azurite."""

from __future__ import annotations

import json

from activities.merge_results import run as merge_results
from activities.write_marker import run as write_marker
from recobatch import naming


def test_failed_chunk_keeps_partial_results_and_lists_unscored_requests(containers):
    work = containers["work"]
    work.create_container()
    put = lambda name, data: work.get_blob_client(name).upload_blob(data)  # noqa: E731
    put(naming.chunk_index_blob("rb-m", 1), b"[0,1]")
    put(naming.chunk_output_blob("rb-m", 1),
        json.dumps({"results": [{"request": {"seedItems": ["A"]}, "recommendations": []},
                                {"request": {"seedItems": ["B"]}, "recommendations": []}]}))
    put(naming.chunk_error_blob("rb-m", 1), b"request 1: unknown items\n")
    put(naming.chunk_index_blob("rb-m", 2), b"[3]")
    put(naming.rejected_blob("rb-m"),
        b'{"index": 2, "message": "request 2: SeedItems is missing"}\n')

    merged = merge_results({"instanceId": "rb-m", "inputName": "p.json",
                            "chunks": [{"name": "chunk-00001", "status": "Succeeded"},
                                       {"name": "chunk-00002", "status": "Cancelled"}]})

    output = containers["output"]
    results = json.loads(output.get_blob_client("p/results.json").download_blob().readall())
    errors = output.get_blob_client("p/errors.txt").download_blob().readall().decode()
    assert [r["index"] for r in results["results"]] == [0, 1]
    assert errors.splitlines() == ["request 1: unknown items",
                                   "request 2: SeedItems is missing",
                                   "request 3: not scored: chunk-00002 ended Cancelled"]
    assert merged["counts"] == {"results": 2, "errors": 3}
    assert merged["errors"]["size"] == len(errors.encode())


def test_write_marker_writes_the_document_last_in_the_output_folder(containers):
    answer = write_marker({"kind": "failed", "inputName": "q.jsonl",
                           "marker": {"code": "InvalidInput", "message": "no valid request."}})

    body = json.loads(containers["output"].get_blob_client("q/_FAILED").download_blob().readall())
    assert answer == {"name": "q/_FAILED"}
    assert (body["kind"], body["code"], body["inputName"]) == ("failed", "InvalidInput",
                                                               "q.jsonl")
