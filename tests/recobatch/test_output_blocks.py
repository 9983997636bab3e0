"""Chunk outputs read a block of results at a time give what the one-by-one walk gives."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recobatch.chunking import _RESULT, _RESULT_START, iter_results
from recobatch.errors import OutputInvalidError
from recobatch.jsonstream import JsonStream, JsonSyntaxError, nesting_within
from recobatch.limits import MAX_JSON_DEPTH, MAX_RESULT_BYTES, PARSE_WINDOW

# Strings that look like structure: the block guess must never be fooled by them.
tricky = st.sampled_from(['{"request"', ', {"request": ', '"', "\\", "]", "[", "}", "{", ",",
                          "é", "\u2028", "\n", "\\\"", '"}, {"request": 1}'])
text = st.lists(st.one_of(tricky, st.text(max_size=6)), max_size=4).map("".join)
scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                   st.floats(allow_nan=False, allow_infinity=False), text)
value = st.recursive(scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)), max_leaves=12)
v4_result = st.fixed_dictionaries({
    "request": st.one_of(st.fixed_dictionaries({"seedItems": st.lists(text, max_size=3)}),
                         value),
    "recommendations": st.lists(st.fixed_dictionaries({
        "items": st.lists(st.fixed_dictionaries({"itemId": text, "name": text,
                                                 "metadata": text}), max_size=2),
        "rating": st.floats(0, 1),
        "reasoning": st.lists(text, max_size=1)}), max_size=3),
})
results_st = st.lists(st.one_of(v4_result, v4_result, value), max_size=40)
layouts = st.sampled_from([{}, {"separators": (",", ":")}, {"indent": 1},
                           {"ensure_ascii": False}])


def _walk(data: bytes) -> list:
    """The results, walked one by one (no block parse): the reference."""
    scan = JsonStream(io.BytesIO(data))
    out = []
    for key in scan.members():
        if key == "results":
            out.extend(scan.items(2, MAX_RESULT_BYTES, None, _RESULT, PARSE_WINDOW))
        else:
            scan.skip(depth=1)
    scan.end()
    return out


@settings(max_examples=300, deadline=None)
@given(results=results_st, layout=layouts)
def test_results_read_in_blocks_equal_the_walk_one_by_one(results, layout):
    data = json.dumps({"results": results}, **layout).encode("utf-8")

    got = list(iter_results(data, len(results), "chunk-00001"))

    assert got == _walk(data) == json.loads(data)["results"]


def _deep(levels: int) -> dict:
    """A result nested ``levels`` deep (the result object itself is level 1)."""
    inner: object = 1
    for _ in range(levels - 2):
        inner = [inner]
    return {"request": {"x": inner}}  # the result's own object + "request"'s + the lists


@pytest.mark.parametrize("separators", [(", ", ": "), (",", ":")])
def test_a_result_at_the_depth_limit_passes_and_one_deeper_fails_among_many(separators):
    # Results sit at depth 2 in {"results": [...]}: the limit leaves them 30 levels.
    ok = [{"request": {"seedItems": ["A"]}, "recommendations": []}] * 50
    allowed = MAX_JSON_DEPTH - 2
    fine = json.dumps({"results": ok + [_deep(allowed)] + ok},
                      separators=separators).encode()
    deep = json.dumps({"results": ok + [_deep(allowed + 1)] + ok},
                      separators=separators).encode()

    assert len(list(iter_results(fine, 101, "chunk-00001"))) == 101
    with pytest.raises(OutputInvalidError) as info:
        list(iter_results(deep, 101, "chunk-00001"))
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in str(info.value)


@pytest.mark.parametrize("damage", [b'"unterminated', b"1 2", b"tru", b"}"])
def test_invalid_json_inside_a_block_reports_the_walks_offset(damage):
    good = b'{"request": {"seedItems": ["A"]}, "recommendations": []}'
    data = b'{"results": [' + b", ".join([good] * 30 + [b'{"request": ' + damage + b"}"]
                                        + [good] * 30) + b"]}"
    with pytest.raises(JsonSyntaxError) as walked:
        _walk(data)

    with pytest.raises(OutputInvalidError) as info:
        list(iter_results(data, 61, "chunk-00001"))

    assert f"at byte {walked.value.offset:,}" in str(info.value)


def test_the_block_guess_is_what_the_service_writes():
    # recoservice writes json.dumps-style results, each opening with its request.
    assert json.dumps({"request": {}}).encode().startswith(_RESULT_START)


def _empty_at(levels: int) -> dict:
    """A result whose deepest container, an empty list, is at depth ``levels``."""
    inner: object = []
    for _ in range(levels - 2):
        inner = [inner]
    return {"request": inner}


@pytest.mark.parametrize(("value", "within"), [
    ({}, True), (_deep(5), True), (_deep(29), True), (_empty_at(30), True),
    (_deep(30), False),  # cautious: a non-empty container at the limit is walked instead
    (_deep(31), False), (_empty_at(31), False)])
def test_nesting_within_admits_the_depths_below_the_limit_and_refuses_above(value, within):
    assert nesting_within([value, {"b": "[[[[\n"}], 30) is within
