"""The jsonl and csv results files: staged per chunk, committed by the merge, and read back with
the standard library they say the same as the json results of the same chunks."""

from __future__ import annotations

import csv
import io
import json

import pytest

from activities.merge_results import run as merge_results
from activities.verify_output import run as verify_output
from recobatch import assembly
from tests.activities.act_helpers import upload
from tests.activities.test_assembly import INSTANCE, _write_chunks

STATUSES = ["Succeeded", "Failed", "Succeeded", "Succeeded", "Cancelled", "Succeeded"]


def _run(containers, etag: str, chunks, fmt: str | None, metadata: bool = False,
         verify: bool = True) -> dict:
    extra = {"format": fmt, "includeMetadata": metadata} if fmt else {}
    parts = {}
    for chunk in chunks:
        if verify and chunk.status == "Succeeded":
            found = verify_output({"instanceId": INSTANCE, "chunk": chunk.name,
                                   "inputName": "in.json", **extra})
            assert found["valid"] is True, found
            parts[chunk.name] = found["part"]
    return merge_results({"instanceId": INSTANCE,
                          "container": containers["input"].container_name,
                          "inputName": "in.json", "etag": etag, **extra,
                          "chunks": [{"name": c.name, "status": c.status,
                                      **({"part": parts[c.name]} if c.name in parts else {})}
                                     for c in chunks]})


def _read(containers, name: str) -> bytes:
    return containers["output"].get_blob_client(name).download_blob().readall()


def _items(result: dict) -> list[tuple[int, dict, dict]]:
    return [(rank, item, rec) for rank, rec in enumerate(result.get("recommendations", []), 1)
            for item in rec["items"]]


@pytest.fixture
def written_run(containers):
    etag = upload(containers, "in.json", b'{"requests": []}')
    chunks, _ = _write_chunks(containers, STATUSES, seed=21)
    merged = _run(containers, etag, chunks, None)
    reference = json.loads(_read(containers, merged["results"]["name"]))["results"]
    return etag, chunks, reference


@pytest.mark.parametrize("metadata", [False, True])
def test_jsonl_has_one_line_per_scored_request_matching_the_json(containers, written_run,
                                                                  metadata):
    etag, chunks, reference = written_run

    merged = _run(containers, etag, chunks, "jsonl", metadata)

    assert merged["results"]["name"] == "in.json/results.jsonl"
    text = _read(containers, "in.json/results.jsonl").decode("utf-8")
    lines = [json.loads(line) for line in text.splitlines()]
    assert text.endswith("\n") and len(lines) == len(reference) == merged["counts"]["results"]
    for line, result in zip(lines, reference, strict=True):
        assert line["index"] == result["index"]
        if "result" in result:  # not a v4 result object: kept as the json keeps it
            assert line == result
            continue
        assert line["request"] == result.get("request")
        expected = [{"itemId": item["itemId"], "score": rec["rating"],
                     **({"name": item.get("name"), "metadata": item.get("metadata"),
                         "reasoning": rec.get("reasoning")} if metadata else {})}
                    for _rank, item, rec in _items(result)]
        assert line["recommendations"] == expected
    assert merged["results"]["size"] == len(text.encode("utf-8"))


def test_csv_has_a_header_and_one_row_per_recommended_item_matching_the_json(containers,
                                                                             written_run):
    etag, chunks, reference = written_run

    merged = _run(containers, etag, chunks, "csv")

    data = _read(containers, "in.json/results.csv")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert rows[0] == ["index", "rank", "itemId", "score"]
    expected = [[str(r["index"]), str(rank), item["itemId"], rec["rating"]]
                for r in reference if isinstance(r, dict) for rank, item, rec in _items(r)]
    assert [row[:3] for row in rows[1:]] == [e[:3] for e in expected]
    assert [float(row[3]) for row in rows[1:]] == [e[3] for e in expected]
    assert data.endswith(b"\r\n") and merged["results"]["size"] == len(data)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_merge_staging_the_parts_itself_writes_the_same_bytes(containers, written_run, fmt):
    etag, chunks, _ = written_run
    _run(containers, etag, chunks, fmt)
    staged_by_verify = _read(containers, f"in.json/results.{fmt}")

    _run(containers, etag, chunks, fmt, verify=False)

    assert _read(containers, f"in.json/results.{fmt}") == staged_by_verify


def test_the_folder_keeps_only_the_results_file_of_the_last_format(containers, written_run):
    etag, chunks, _ = written_run

    _run(containers, etag, chunks, "csv")

    names = sorted(b.name for b in containers["output"].list_blobs(name_starts_with="in.json/"))
    assert names == ["in.json/errors.txt", "in.json/results.csv"]


def test_the_csv_quotes_as_rfc_4180_says():
    row = assembly.FORMATS["csv"].record(
        7, {"recommendations": [{"items": [{"itemId": 'a,"b"'}], "rating": 0.5}]}, False)

    assert row == b'7,1,"a,""b""",0.5\r\n'
