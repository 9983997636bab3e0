"""Split and merge: order kept, chunks within the limit, errors renumbered (properties)."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recobatch.chunking import (
    ChunkOutput,
    encode_request,
    merge_outputs,
    split_requests,
    translate_errors,
)
from recobatch.errors import OutputInvalidError

item_ids = st.text(alphabet="ABCDEFGHIJ-0123456789é", min_size=1, max_size=50)
requests_st = st.lists(st.fixed_dictionaries({"SeedItems": st.lists(item_ids, min_size=1,
                                                                     max_size=6)}),
                       min_size=0, max_size=120)


def _fake_output(body: bytes) -> bytes:
    """What the service writes for a chunk: one echoing result per request."""
    reqs = json.loads(body)["requests"]
    return json.dumps({"results": [{"request": {"seedItems": r["SeedItems"]},
                                    "recommendations": []} for r in reqs]}).encode()


@settings(max_examples=150, deadline=None)
@given(reqs=requests_st, limit=st.integers(min_value=400, max_value=3000),
       skip=st.sets(st.integers(min_value=0, max_value=119)))
def test_merge_of_split_keeps_every_request_in_order_and_chunks_fit(reqs, limit, skip):
    kept = [(i, encode_request(r)) for i, r in enumerate(reqs) if i not in skip]

    chunks = list(split_requests(kept, limit))

    assert all(len(c.body) <= limit for c in chunks)
    assert [c.number for c in chunks] == list(range(1, len(chunks) + 1))
    assert [i for c in chunks for i in c.indices] == [i for i, _ in kept]
    assert all(json.loads(c.body)["requests"] for c in chunks)
    outputs = [ChunkOutput(c.name, c.indices, "Succeeded", _fake_output(c.body), "")
               for c in chunks]
    rejected = [(i, f"request {i}: rejected") for i in sorted(skip) if i < len(reqs)]
    results, errors = io.BytesIO(), io.BytesIO()
    counts = merge_outputs(outputs, rejected, results, errors)
    merged = json.loads(results.getvalue())["results"]
    assert [r["index"] for r in merged] == [i for i, _ in kept]
    assert [r["request"]["seedItems"] for r in merged] == \
        [reqs[i]["SeedItems"] for i, _ in kept]
    assert counts.results == len(kept)
    assert errors.getvalue().decode().splitlines() == [m for _, m in rejected]


def test_upstream_error_lines_are_renumbered_and_interleaved_with_rejections():
    chunks = [
        ChunkOutput("chunk-00001", [0, 2], "Succeeded",
                    json.dumps({"results": [{"request": {}}, {"request": {}}]}).encode(),
                    "request 1: unknown items\n"),
        ChunkOutput("chunk-00002", [3, 5], "Succeeded",
                    json.dumps({"results": [{"request": {}}, {"request": {}}]}).encode(),
                    "request 0: unknown items\nrequest 1: nothing to recommend\n"),
    ]
    rejected = [(1, "request 1: SeedItems is missing"), (4, "request 4: SeedItems is missing")]
    results, errors = io.BytesIO(), io.BytesIO()

    counts = merge_outputs(chunks, rejected, results, errors)

    assert errors.getvalue().decode().splitlines() == [
        "request 1: SeedItems is missing",
        "request 2: unknown items",
        "request 3: unknown items",
        "request 4: SeedItems is missing",
        "request 5: nothing to recommend",
    ]
    assert (counts.results, counts.errors) == (4, 5)


def test_failed_chunk_gives_not_scored_lines_and_no_results():
    chunks = [ChunkOutput("chunk-00001", [0], "Succeeded",
                          b'{"results": [{"request": {"seedItems": ["A"]}}]}', ""),
              ChunkOutput("chunk-00002", [1, 2], "Failed")]
    results, errors = io.BytesIO(), io.BytesIO()

    merge_outputs(chunks, [], results, errors)

    assert [r["index"] for r in json.loads(results.getvalue())["results"]] == [0]
    assert errors.getvalue().decode().splitlines() == [
        "request 1: not scored: chunk-00002 ended Failed",
        "request 2: not scored: chunk-00002 ended Failed"]


def test_unnumbered_upstream_lines_are_kept_with_the_chunk_name():
    lines = translate_errors(ChunkOutput("chunk-00002", [7, 8], "Succeeded", b"",
                                         "disk hiccup\nrequest 9: out of range\n"))

    assert lines == [(7, "chunk-00002: disk hiccup"), (7, "chunk-00002: request 9: out of range")]


@pytest.mark.parametrize(("output", "words"), [
    (None, "no output blob"), (b"this is not JSON {", "not valid JSON"),
    (b'{"other": []}', "holds 0 results for 1 requests"),
    (b'{"results": []}', "holds 0 results for 1 requests"),
    (b'{"results": [{}, {}]}', "more than 1 results for 1 requests"),
])
def test_a_bad_chunk_output_fails_the_merge(output, words):
    with pytest.raises(OutputInvalidError) as info:
        merge_outputs([ChunkOutput("chunk-00001", [0], "Succeeded", output, "")], [],
                      io.BytesIO(), io.BytesIO())

    assert words in str(info.value)
    assert "chunk-00001" in str(info.value)


def test_split_refuses_a_request_that_cannot_fit():
    with pytest.raises(ValueError):
        list(split_requests([(0, b"x" * 100)], 100))
