"""The one-pass prepare writes byte-for-byte what the two-pass ijson prepare wrote (property).

``legacy_prepare`` is the previous implementation, kept as the reference: same chunks (number,
body, indices), same ``rejected.jsonl`` bytes, same counts and job, for varied inputs (valid and
invalid requests, escapes, whitespace styles, ``"job"`` before, after or absent, other keys,
JSON Lines, chunk sizes). Files both refuse are compared by error class only: the messages
now say where and what.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import legacy_prepare
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rb_helpers import BASE_JOB

from recobatch import jsonstream
from recobatch import prepare as current
from recobatch.errors import InputError

ids = st.one_of(
    st.text(alphabet="ABCDEFGHJK0123456789-_.:/", min_size=1, max_size=52),
    st.text(min_size=0, max_size=55),
    st.sampled_from(["A B", "é", 'q"uote', "back\\slash", "a,b", "[x]", "{y}", " ", "\t", "A\n"]),
)
good = st.fixed_dictionaries({"SeedItems": st.lists(ids, min_size=1, max_size=5)})
odd = st.one_of(
    st.sampled_from([{}, {"SeedItems": []}, {"SeedItems": "A"}, {"SeedItems": ["A", 3]},
                     "A", 5, None, 1.5, True, [], [["A"]], {"SeedItems": [["A"]]},
                     {"UserId": "u1"}, {"UserId": " "}, {"UserId": "u" * 300},
                     {"UserId": "u2", "SeedItems": ["A"]}, {"SeedItems": ["A"], "UserId": "u3"},
                     {"seedItems": ["A"]}, {"SeedItems": ["A"], "x": {"y": [1, {"z": 2}]}}]),
    st.dictionaries(st.text(max_size=8), st.integers(-10**6, 10**6), max_size=3),
)
requests_st = st.lists(st.one_of(good, good, good, odd), max_size=40)
styles = st.sampled_from([
    {"separators": (",", ":")}, {}, {"indent": 2}, {"ensure_ascii": False},
    {"separators": (",", ":"), "ensure_ascii": False},
])
jobs = st.one_of(st.none(), st.fixed_dictionaries({}, optional={
    "apiName": st.sampled_from(["ItemRecommend", "UserRecommend", "ItemFbtRecommend"]),
    "numberOfResults": st.integers(1, 20)}))


def _run(prepare: Any, data: bytes, jsonl: bool, max_job_bytes: int,
         caller_job: dict | None) -> Any:
    chunks: list = []
    sinks: list[bytes] = []

    class Sink(io.BytesIO):
        def close(self) -> None:
            sinks.append(self.getvalue())
            super().close()

    def open_rejected() -> Sink:
        chunks.clear()
        return Sink()

    try:
        summary = prepare(lambda: io.BufferedReader(io.BytesIO(data)), jsonl, BASE_JOB,
                          caller_job, max_job_bytes, chunks.append, open_rejected)
    except InputError as exc:
        return type(exc).__name__
    return (summary.requests, summary.valid, summary.rejected, summary.chunks,
            summary.job, summary.first_rejection,
            [(c.number, c.body, c.indices) for c in chunks], sinks[-1])


@contextmanager
def _blocks_of(size: int) -> Iterator[None]:
    saved, jsonstream.BLOCK = jsonstream.BLOCK, size
    try:
        yield
    finally:
        jsonstream.BLOCK = saved


def _document(requests: list, job: dict | None, job_first: bool, extra: bool,
              style: dict) -> bytes:
    members = [("requests", requests)]
    if job is not None:
        members.insert(0 if job_first else 1, ("job", job))
    if extra:
        members.insert(1, ("note", {"by": ["someone", 1, [2.5, None]]}))
    sep = ", " if "separators" not in style else ","
    text = "{" + sep.join(json.dumps(k) + ":" + json.dumps(v, **style) for k, v in members) \
        + "}"
    return text.encode()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests=requests_st, job=jobs, job_first=st.booleans(), extra=st.booleans(),
       style=styles, max_job_bytes=st.sampled_from([120, 300, 1024, 5000, 2_000_000]),
       caller=st.sampled_from([None, {"apiName": "UserRecommend"}, {"numberOfResults": 3}]),
       bom=st.booleans(), block=st.sampled_from([5, 64, 1 << 20]))
def test_seed_json_outputs_are_those_of_the_previous_implementation(
        requests, job, job_first, extra, style, max_job_bytes, caller, bom, block):
    data = (b"\xef\xbb\xbf" if bom else b"") + _document(requests, job, job_first, extra, style)

    with _blocks_of(block):  # small blocks: every value crosses a read boundary somewhere
        new = _run(current.prepare, data, False, max_job_bytes, caller)
    old = _run(legacy_prepare.prepare, data.removeprefix(b"\xef\xbb\xbf"), False,
               max_job_bytes, caller)

    assert new == old


@settings(max_examples=200, deadline=None)
@given(requests=requests_st, style=styles, blank=st.lists(st.booleans(), max_size=40),
       broken=st.sets(st.integers(0, 39), max_size=3),
       max_job_bytes=st.sampled_from([120, 300, 1024, 2_000_000]))
def test_json_lines_outputs_are_those_of_the_previous_implementation(
        requests, style, blank, broken, max_job_bytes):
    style = {k: v for k, v in style.items() if k != "indent"}
    lines = []
    for n, request in enumerate(requests):
        line = json.dumps(request, **style)
        lines.append(line[:-1] if n in broken and len(line) > 1 else line)
        if n < len(blank) and blank[n]:
            lines.append("  ")
    data = "\n".join(lines).encode()

    assert _run(current.prepare, data, True, max_job_bytes, None) == \
        _run(legacy_prepare.prepare, data, True, max_job_bytes, None)


def test_a_job_after_the_requests_changing_the_api_name_gives_the_same_outputs():
    data = b'{"requests":[{"UserId":"u1"},{"SeedItems":["A"]},{"UserId":"u2","SeedItems":["B"]}],' \
        b'"job":{"apiName":"UserRecommend"}}'

    assert _run(current.prepare, data, False, 2_000_000, None) == \
        _run(legacy_prepare.prepare, data, False, 2_000_000, None)


@pytest.mark.parametrize("style", [{"separators": (",", ":")}, {}, {"indent": 1}])
def test_a_large_file_crossing_many_reads_and_windows_gives_the_same_outputs(style):
    rng = random.Random(7)
    pool = [{"SeedItems": ["A1F-00001"]}, {"SeedItems": ["B2F-00002", "C3F-00003"]},
            {"SeedItems": ["é-long"]}, {"SeedItems": []}, {"seedItems": ["x"]}, 5,
            {"SeedItems": ["Z" * 51]}, {"SeedItems": [f"I{n}" for n in range(30_000)]}]
    weights = [60, 30, 3, 2, 2, 1, 1, 0.05]
    requests = rng.choices(pool, weights, k=60_000)
    data = _document(requests, {"numberOfResults": 4}, False, True, style)
    assert len(data) > 3_000_000

    assert _run(current.prepare, data, False, 2_000_000, None) == \
        _run(legacy_prepare.prepare, data, False, 2_000_000, None)
