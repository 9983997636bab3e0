"""Input formats and validation: bad requests are rejected by index, bad files fail whole."""

from __future__ import annotations

import json

import pytest
from rb_helpers import run_prepare, seed

from recobatch.batchfile import check_size, is_jsonl
from recobatch.errors import InputError, InputTooLargeError


@pytest.mark.parametrize(("request_", "problem"), [
    ({"SeedItems": []}, "SeedItems must be a non-empty list of strings"),
    ({"SeedItems": "A"}, "SeedItems must be a non-empty list of strings"),
    ({"SeedItems": ["A", 3]}, "SeedItems must be a non-empty list of strings"),
    ({"SeedItems": [""]}, "SeedItems must be a non-empty list of strings"),
    ({}, "SeedItems is missing"),
    ({"SeedItems": ["X" * 51]}, "longer than 50 characters"),
    ({"seedItems": ["A"]}, 'unknown key "seedItems"'),
    ("A", "must be a JSON object"),
    (None, "must be a JSON object"),
])
def test_each_bad_request_is_rejected_with_its_index_and_the_rest_proceed(request_, problem):
    data = seed([{"SeedItems": ["A"]}, request_, {"SeedItems": ["B"]}])

    summary, chunks, rejected = run_prepare(data)

    assert (summary.requests, summary.valid, summary.rejected) == (3, 2, 1)
    assert rejected[0]["index"] == 1
    assert rejected[0]["message"].startswith("request 1: ")
    assert problem in rejected[0]["message"]
    assert chunks[0].indices == [0, 2]


def test_user_recommend_needs_user_id():
    data = seed([{"UserId": "u1"}, {"SeedItems": ["A"]}, {"UserId": "u2", "SeedItems": ["A"]}],
                job={"apiName": "UserRecommend"})

    summary, chunks, rejected = run_prepare(data)

    assert summary.job is not None and summary.job.api_name == "UserRecommend"
    assert [r["index"] for r in rejected] == [1]
    assert "UserId is missing" in rejected[0]["message"]
    assert json.loads(chunks[0].body)["requests"] == [{"UserId": "u1"},
                                                      {"UserId": "u2", "SeedItems": ["A"]}]


def test_job_overrides_are_applied_validated_and_stripped_from_chunks():
    data = seed([{"SeedItems": ["A"]}], job={"numberOfResults": 5, "includeMetadata": True})

    summary, chunks, _ = run_prepare(data)

    assert summary.job is not None
    assert summary.job.to_dict() == {"apiName": "ItemRecommend", "modelId": "m1",
                                     "numberOfResults": 5, "includeMetadata": True,
                                     "minimalScore": 0.0, "outputFormat": "json"}
    assert json.loads(chunks[0].body) == {"requests": [{"SeedItems": ["A"]}]}


def test_caller_job_wins_over_file_job():
    data = seed([{"SeedItems": ["A"]}], job={"numberOfResults": 5})

    summary, _, _ = run_prepare(data, caller_job={"numberOfResults": 7})

    assert summary.job is not None and summary.job.number_of_results == 7


def test_job_after_requests_changing_api_name_revalidates():
    body = b'{"requests":[{"UserId":"u1"},{"SeedItems":["A"]}],"job":{"apiName":"UserRecommend"}}'

    summary, chunks, rejected = run_prepare(body)

    assert summary.job is not None and summary.job.api_name == "UserRecommend"
    assert [r["index"] for r in rejected] == [1]
    assert [c.indices for c in chunks] == [[0]]


@pytest.mark.parametrize(("job", "field"), [
    ({"numberOfResults": 0}, "job.numberOfResults"),
    ({"apiName": "Nope"}, "job.apiName"),
    ({"includeMetadata": "yes"}, "job.includeMetadata"),
    ({"color": "red"}, "job.color"),
    ({"buildId": "x"}, "job.buildId"),
])
def test_bad_job_overrides_fail_the_whole_file_naming_the_field(job, field):
    with pytest.raises(InputError) as info:
        run_prepare(seed([{"SeedItems": ["A"]}], job=job))

    assert field in str(info.value)
    assert str(info.value).startswith("InvalidInput: ")


@pytest.mark.parametrize(("data", "words"), [
    (b'{"requests": [{"SeedItems": ["A"]}', "not valid JSON"),
    (b"not json at all", "not valid JSON"),
    (b'[{"SeedItems": ["A"]}]', "must be a JSON object"),
    (b'{"requests": {"SeedItems": ["A"]}}', "must be a list"),
    (b'{"request": []}', 'no "requests" list (found \'request\')'),
    (b'{"requests": [], "job": {}, "job": {}}', 'more than one "job"'),
    (b'{"job": {}}', 'no "requests" list'),
    (b'{"requests": []}', "no requests"),
    (b'{"requests": [{"SeedItems": []}, 5]}', "no valid request"),
    (b'{"requests": [], "job": 3}', '"job" must be a JSON object'),
])
def test_unusable_files_fail_whole(data, words):
    with pytest.raises(InputError) as info:
        run_prepare(data)

    assert words in str(info.value)


def test_json_lines_numbers_requests_by_line_skipping_blank_lines():
    data = b'\xef\xbb\xbf{"SeedItems": ["A"]}\n\n{"SeedItems": []}\n{oops\n{"SeedItems": ["B"]}'

    summary, chunks, rejected = run_prepare(data, jsonl=True)

    assert (summary.requests, summary.valid) == (4, 2)
    assert [(r["index"], r["message"].split(":")[0]) for r in rejected] == [
        (1, "request 1"), (2, "request 2")]
    assert "not valid JSON" in rejected[1]["message"]
    assert chunks[0].indices == [0, 3]


def test_format_and_size_checks():
    assert is_jsonl("a/b.JSONL") and is_jsonl("x.ndjson") and not is_jsonl("x.json")
    check_size(10, 10)
    with pytest.raises(InputTooLargeError) as info:
        check_size(11, 10)
    assert str(info.value).startswith("InputTooLarge: ")


def test_a_request_larger_than_a_chunk_is_rejected_alone():
    big = {"SeedItems": [f"I{n:040d}" for n in range(40)]}
    data = seed([{"SeedItems": ["A"]}, big])

    summary, chunks, rejected = run_prepare(data, max_job_bytes=1024)

    assert summary.valid == 1
    assert rejected[0]["index"] == 1 and "larger than one batch job input" in \
        rejected[0]["message"]
