"""merge_results with a failed chunk (partial results) and write_marker, on real Azurite.

Both write to the output folder only for the current version of the input blob: a run whose
input was re-uploaded (or deleted) gets ``Superseded`` and leaves the folder as it was.
"""

from __future__ import annotations

import json

import pytest
from act_helpers import upload

from activities.merge_results import run as merge_results
from activities.write_marker import run as write_marker
from recobatch import naming
from recobatch.errors import SupersededError


def _version(containers, name: str, etag: str) -> dict:
    return {"container": containers["input"].container_name, "inputName": name, "etag": etag}


def _one_chunk_work(containers, instance: str) -> None:
    work = containers["work"]
    if not work.exists():
        work.create_container()
    put = lambda name, data: work.get_blob_client(name).upload_blob(data)  # noqa: E731
    put(naming.chunk_index_blob(instance, 1), b"[0]")
    put(naming.chunk_output_blob(instance, 1),
        json.dumps({"results": [{"request": {"seedItems": ["A"]}, "recommendations": []}]}))
    put(naming.chunk_error_blob(instance, 1), b"")


def _output(containers, path: str) -> bytes | None:
    blob = containers["output"].get_blob_client(path)
    return blob.download_blob().readall() if blob.exists() else None


def test_failed_chunk_keeps_partial_results_and_lists_unscored_requests(containers):
    etag = upload(containers, "p.json", b'{"requests": []}')
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

    merged = merge_results({"instanceId": "rb-m", **_version(containers, "p.json", etag),
                            "chunks": [{"name": "chunk-00001", "status": "Succeeded"},
                                       {"name": "chunk-00002", "status": "Cancelled"}]})

    output = containers["output"]
    results = json.loads(output.get_blob_client("p.json/results.json").download_blob().readall())
    errors = output.get_blob_client("p.json/errors.txt").download_blob().readall().decode()
    assert [r["index"] for r in results["results"]] == [0, 1]
    assert errors.splitlines() == ["request 1: unknown items",
                                   "request 2: SeedItems is missing",
                                   "request 3: not scored: chunk-00002 ended Cancelled"]
    assert merged["counts"] == {"results": 2, "errors": 3}
    assert merged["errors"]["size"] == len(errors.encode())


def test_write_marker_writes_the_document_last_in_the_output_folder(containers):
    etag = upload(containers, "q.jsonl", b"{}\n")

    answer = write_marker({"kind": "failed", **_version(containers, "q.jsonl", etag),
                           "marker": {"code": "InvalidInput", "message": "no valid request."}})

    marker = containers["output"].get_blob_client("q.jsonl/_FAILED")
    body = json.loads(marker.download_blob().readall())
    assert answer == {"name": "q.jsonl/_FAILED"}
    assert (body["kind"], body["code"], body["inputName"]) == ("failed", "InvalidInput",
                                                               "q.jsonl")


def test_merge_of_a_reuploaded_input_is_superseded_and_writes_nothing(containers):
    old = upload(containers, "r.json", b'{"requests": [{"SeedItems": ["A"]}]}')
    new = upload(containers, "r.json", b'{"requests": [{"SeedItems": ["B"]}]}')
    _one_chunk_work(containers, "rb-old")
    containers["output"].create_container()

    with pytest.raises(SupersededError) as raised:
        merge_results({"instanceId": "rb-old", **_version(containers, "r.json", old),
                       "chunks": [{"name": "chunk-00001", "status": "Succeeded"}]})

    assert str(raised.value).startswith("Superseded: ")
    assert "newer upload" in str(raised.value)
    assert _output(containers, "r.json/results.json") is None
    assert _output(containers, "r.json/errors.txt") is None
    input_blob = containers["input"].get_blob_client("r.json")
    assert str(input_blob.get_blob_properties().etag).strip('"') == new  # never modified
    assert input_blob.download_blob().readall() == b'{"requests": [{"SeedItems": ["B"]}]}'


def test_merge_keeps_the_newer_runs_results_when_superseded(containers):
    old = upload(containers, "s.json", b"v1")
    new = upload(containers, "s.json", b"v2")
    _one_chunk_work(containers, "rb-new")
    merge_results({"instanceId": "rb-new", **_version(containers, "s.json", new),
                   "chunks": [{"name": "chunk-00001", "status": "Succeeded"}]})
    before = _output(containers, "s.json/results.json")

    with pytest.raises(SupersededError):
        merge_results({"instanceId": "rb-new", **_version(containers, "s.json", old),
                       "chunks": [{"name": "chunk-00001", "status": "Cancelled"}]})

    assert before is not None and _output(containers, "s.json/results.json") == before
    assert _output(containers, "s.json/errors.txt") == b""


def test_older_runs_failed_marker_neither_replaces_nor_removes_newer_success(containers):
    old = upload(containers, "t.json", b"v1")
    new = upload(containers, "t.json", b"v2")
    write_marker({"kind": "success", **_version(containers, "t.json", new),
                  "marker": {"instanceId": "rb-new", "input": {"etag": new}}})

    with pytest.raises(SupersededError):
        write_marker({"kind": "failed", **_version(containers, "t.json", old),
                      "marker": {"instanceId": "rb-old", "code": "Cancelled",
                                 "message": "cancelled."}})

    success = json.loads(_output(containers, "t.json/_SUCCESS") or b"null")
    assert success["instanceId"] == "rb-new" and success["input"]["etag"] == new
    assert _output(containers, "t.json/_FAILED") is None
    assert str(containers["input"].get_blob_client("t.json").get_blob_properties().etag
               ).strip('"') == new


def test_marker_for_a_deleted_input_is_superseded(containers):
    etag = upload(containers, "u.json", b"v1")
    containers["input"].delete_blob("u.json")

    with pytest.raises(SupersededError) as raised:
        write_marker({"kind": "success", **_version(containers, "u.json", etag),
                      "marker": {"instanceId": "rb-u"}})

    assert "deleted" in str(raised.value)
    assert _output(containers, "u.json/_SUCCESS") is None


def test_current_runs_marker_removes_the_older_uploads_marker(containers):
    old = upload(containers, "w.json", b"v1")
    write_marker({"kind": "failed", **_version(containers, "w.json", old),
                  "marker": {"instanceId": "rb-old", "code": "Cancelled", "message": "x."}})
    new = upload(containers, "w.json", b"v2")

    write_marker({"kind": "success", **_version(containers, "w.json", new),
                  "marker": {"instanceId": "rb-new"}})

    assert json.loads(_output(containers, "w.json/_SUCCESS") or b"null")["instanceId"] == "rb-new"
    assert _output(containers, "w.json/_FAILED") is None
