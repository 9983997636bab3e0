"""outputFormat end to end: json, jsonl and csv of the same requests, read back and compared."""

from __future__ import annotations

import csv
import io
import json
import random

import pytest

pytestmark = pytest.mark.e2e


def _requests(items: list[str], n: int) -> list[dict]:
    rng = random.Random(13)
    return [{"SeedItems": rng.sample(items, rng.randint(1, 3))} for _ in range(n)] + [
        {"SeedItems": ["NOT-IN-CATALOG"]}, {"nope": 1}]


def _scored(results: list[dict]) -> list[tuple[int, int, str, float]]:
    return [(r["index"], rank, item["itemId"], rec["rating"]) for r in results
            for rank, rec in enumerate(r["recommendations"], 1) for item in rec["items"]]


def test_each_format_reads_back_to_the_json_results_of_the_same_run(app_factory, demo_items):
    app = app_factory(BATCH_MAX_JOB_BYTES="2000")  # several chunks
    reqs = _requests(demo_items, 60)
    manifests = {}
    for fmt in ("json", "jsonl", "csv"):
        job = {} if fmt == "json" else {"job": {"outputFormat": fmt, "includeMetadata": True}}
        app.upload(f"same-{fmt}.json", json.dumps({"requests": reqs, **job}))
    for fmt in ("json", "jsonl", "csv"):
        marker, manifests[fmt] = app.wait_for_marker(f"same-{fmt}.json", timeout=180)
        assert marker == "_SUCCESS", manifests[fmt]

    reference = json.loads(app.read_output("same-json.json/results.json"))["results"]
    lines = app.read_output("same-jsonl.json/results.jsonl").decode("utf-8").splitlines()
    rows = list(csv.reader(io.StringIO(app.read_output("same-csv.json/results.csv").decode(),
                                       newline="")))

    assert len(manifests["json"]["chunks"]) > 1
    for fmt, name in (("jsonl", "results.jsonl"), ("csv", "results.csv")):
        outputs = [o["name"] for o in manifests[fmt]["outputs"]]
        assert outputs == [f"same-{fmt}.json/{name}", f"same-{fmt}.json/errors.txt"]
        assert manifests[fmt]["job"]["outputFormat"] == fmt
        assert app.read_output(f"same-{fmt}.json/errors.txt") == \
            app.read_output("same-json.json/errors.txt")
    jsonl = [json.loads(line) for line in lines]
    assert [(x["index"], x["request"]) for x in jsonl] == \
        [(r["index"], r["request"]) for r in reference]
    assert [(x["index"], rank, rec["itemId"], rec["score"]) for x in jsonl
            for rank, rec in enumerate(x["recommendations"], 1)] == _scored(reference)
    assert all({"name", "metadata", "reasoning"} <= set(rec) for x in jsonl
               for rec in x["recommendations"])
    assert rows[0] == ["index", "rank", "itemId", "score"]
    assert [(int(i), int(k), item, float(s)) for i, k, item, s in rows[1:]] == \
        _scored(reference)


def test_the_app_setting_chooses_the_format_and_jsonl_leaves_metadata_out(app_factory,
                                                                          demo_items):
    app = app_factory(BATCH_OUTPUT_FORMAT="jsonl")
    app.upload("plain.json", json.dumps({"requests": _requests(demo_items, 3)}))

    marker, manifest = app.wait_for_marker("plain.json")

    assert marker == "_SUCCESS"
    assert [o["name"] for o in manifest["outputs"]][0] == "plain.json/results.jsonl"
    assert app.read_output("plain.json/results.json") is None
    first = json.loads(app.read_output("plain.json/results.jsonl").splitlines()[0])
    assert set(first) == {"index", "request", "recommendations"}
    assert set(first["recommendations"][0]) == {"itemId", "score"}
