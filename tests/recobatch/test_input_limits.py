"""Hostile requests files and outputs: refused in constant memory, with bounded messages that
say where and what (issue 7, "Input files")."""

from __future__ import annotations

import io
import json
import tracemalloc

import pytest
from rb_helpers import run_prepare, seed

from recobatch.chunking import ChunkOutput, merge_outputs
from recobatch.errors import InputError, OutputInvalidError
from recobatch.limits import MAX_JSON_DEPTH, MAX_MESSAGE_CHARS, MAX_REQUEST_ITEMS

DEEP = b"[" * 300_000


def _peak_while(call) -> tuple[int, BaseException | None]:
    """Peak traced memory (bytes) while ``call()`` runs, and what it raised."""
    tracemalloc.start()
    try:
        call()
        raised = None
    except BaseException as exc:  # noqa: BLE001 - returned to the test
        raised = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, raised


@pytest.mark.parametrize(("data", "jsonl", "where"), [
    (b'{"requests": [' + DEEP, False, "(request 0)"),
    (b'{"requests": [{"SeedItems": ["A"]}, ' + DEEP, False, "(request 1)"),
    (b'{"job": ' + DEEP, False, "byte 39"),
    (b'{"other": {"x": ' + DEEP, False, "byte "),
    (b'{"SeedItems": ["A"]}\n' + DEEP, True, "(request 1)"),
], ids=["request", "second-request", "job", "other-key", "jsonl"])
def test_deep_nesting_is_refused_in_constant_memory_naming_the_depth(data, jsonl, where):
    peak, raised = _peak_while(lambda: run_prepare(data, jsonl=jsonl))

    assert isinstance(raised, InputError), raised
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in str(raised)
    assert where in str(raised)
    assert peak < 3_000_000  # the 300 KB input is allocated before tracing starts


def test_nesting_within_the_limit_is_read_normally():
    deep_ok = {"SeedItems": ["A"]}
    value: object = ["x"]
    for _ in range(MAX_JSON_DEPTH - 4):
        value = [value]
    data = json.dumps({"requests": [deep_ok, {"SeedItems": value}]}).encode()

    summary, chunks, rejected = run_prepare(data)

    assert (summary.valid, summary.rejected) == (1, 1)
    assert "SeedItems must be a non-empty list of strings" in rejected[0]["message"]


def test_a_ten_megabyte_request_is_rejected_unread_naming_its_index_and_the_limit():
    huge = b'{"SeedItems": [' + b'"ABCDEFGH", ' * 1_000_000 + b'"A"]}'
    data = b'{"requests": [{"SeedItems": ["A"]}, ' + huge + b', {"SeedItems": ["B"]}]}'

    peak, raised = _peak_while(lambda: run_prepare(data, max_job_bytes=2_000_000))
    summary, chunks, rejected = run_prepare(data, max_job_bytes=2_000_000)

    assert raised is None
    assert peak < 8_000_000  # legacy: 138 MB for this request
    assert [c.indices for c in chunks] == [[0, 2]]
    assert rejected == [{"index": 1, "message": "request 1: is larger than one batch job "
                                               "input (1,999,985 bytes)"}]


@pytest.mark.parametrize("jsonl", [False, True])
def test_a_request_with_too_many_items_is_rejected_unread(jsonl):
    many = {"SeedItems": ["A"] * (MAX_REQUEST_ITEMS + 1)}
    if jsonl:
        data = b"\n".join(json.dumps(r).encode() for r in [{"SeedItems": ["A"]}, many])
    else:
        data = seed([{"SeedItems": ["A"]}, many])

    summary, _, rejected = run_prepare(data, jsonl=jsonl, max_job_bytes=2_097_152)

    assert summary.valid == 1
    assert rejected == [{"index": 1, "message": f"request 1: holds more than "
                                               f"{MAX_REQUEST_ITEMS:,} items (the limit per "
                                               "request)"}]


def test_a_request_at_the_item_limit_is_accepted():
    data = seed([{"SeedItems": ["A"] * MAX_REQUEST_ITEMS}])

    summary, chunks, _ = run_prepare(data, max_job_bytes=2_097_152)

    assert summary.valid == 1 and len(json.loads(chunks[0].body)["requests"][0]["SeedItems"]) \
        == MAX_REQUEST_ITEMS


def test_no_requests_message_lists_at_most_five_keys():
    data = json.dumps({f"key{n:06d}" + "x" * 20: n for n in range(100_000)}).encode()

    with pytest.raises(InputError) as info:
        run_prepare(data)

    message = info.value.message
    assert len(message) <= MAX_MESSAGE_CHARS
    assert message.startswith('the requests file has no "requests" list (found ')
    assert "and 99,995 more" in message and message.count("'key") == 5


@pytest.mark.parametrize(("data", "words"), [
    (b'{"requests": [{"SeedItems": ["A"]}, {"SeedItems" ["B"]}]}',
     "not valid JSON at byte 49 (request 1): unexpected character, expected ':'"),
    (b'{"requests": [{"SeedItems": ["A"]}, {"SeedItems": ["B"]]}',
     "not valid JSON at byte 55 (request 1): unexpected character, expected ',' or '}'"),
    (b'{"requests": [{"SeedItems": ["A"]}, [[1}]]}',
     "at byte 39 (request 1): unexpected character"),
    (b'{"requests": [{"SeedItems": ["A"]}',
     "at byte 34 (request 1): expected ',' or ']' after a list element, found the end of the file"),
    (b'{"requests": [], "job": {"a": "b', "at byte 30: the file ends inside a string"),
    (b'{"requests": [{"SeedItems": ["A"]}] "job": {}}', "at byte 36: expected ',' or '}'"),
    (b'{"requests": [{"SeedItems": ["A"]}]} trailing', "at byte 37: unexpected 't' after"),
    (b"not json at all", "not valid JSON at byte 0: it starts with 'n'"),
    (b"", "the requests file is empty"),
])
def test_invalid_json_says_where_and_what_in_words(data, words):
    with pytest.raises(InputError) as info:
        run_prepare(data)

    assert words in info.value.message
    assert "lexical error" not in info.value.message
    assert len(info.value.message) <= MAX_MESSAGE_CHARS


def test_a_huge_job_object_is_refused_naming_the_limit():
    data = b'{"job": {"modelId": "' + b"m" * 100_000 + b'"}, "requests": []}'

    with pytest.raises(InputError) as info:
        run_prepare(data)

    assert 'the requests file\'s "job" is 100,' in info.value.message
    assert "65,536-byte limit" in info.value.message


@pytest.mark.parametrize("jsonl", [False, True])
def test_utf8_byte_order_mark_is_accepted(jsonl):
    body = b'{"SeedItems": ["A"]}' if jsonl else seed([{"SeedItems": ["A"]}])

    summary, chunks, _ = run_prepare(b"\xef\xbb\xbf" + body, jsonl=jsonl)

    assert summary.valid == 1 and chunks[0].body == b'{"requests":[{"SeedItems":["A"]}]}'


@pytest.mark.parametrize(("encoding", "bom", "name"), [
    ("utf-16-le", b"\xff\xfe", "UTF-16 (little-endian, with a byte order mark)"),
    ("utf-16-be", b"\xfe\xff", "UTF-16 (big-endian, with a byte order mark)"),
    ("utf-16-le", b"", "UTF-16 (little-endian)"),
    ("utf-16-be", b"", "UTF-16 (big-endian)"),
    ("utf-32-le", b"\xff\xfe\x00\x00", "UTF-32 (little-endian, with a byte order mark)"),
    ("utf-32-be", b"", "UTF-32 (big-endian)"),
])
@pytest.mark.parametrize("jsonl", [False, True])
def test_utf16_and_utf32_files_are_refused_naming_the_encoding(encoding, bom, name, jsonl):
    text = '{"SeedItems": ["A"]}\n' if jsonl else '{"requests": [{"SeedItems": ["A"]}]}'

    with pytest.raises(InputError) as info:
        run_prepare(bom + text.encode(encoding), jsonl=jsonl)

    assert info.value.message == f"the requests file is encoded as {name}; save it as UTF-8."


def _merge(output: bytes, expected: int = 1) -> None:
    merge_outputs([ChunkOutput("chunk-00001", list(range(expected)), "Succeeded", output, "")],
                  [], io.BytesIO(), io.BytesIO())


@pytest.mark.parametrize("output", [
    b'{"results": [' + DEEP,
    b'{"other": ' + DEEP,
    DEEP,
])
def test_a_deep_chunk_output_is_invalid_naming_the_depth_in_constant_memory(output):
    peak, raised = _peak_while(lambda: _merge(output))

    assert isinstance(raised, OutputInvalidError), raised
    assert f"chunk-00001: the job's output is nested deeper than {MAX_JSON_DEPTH} levels" \
        in str(raised)
    assert peak < 3_000_000


def test_a_huge_result_in_a_chunk_output_is_invalid_unread():
    output = b'{"results": [{"request": {}, "recommendations": [], "x": "' + b"y" * 5_000_000 \
        + b'"}]}'

    peak, raised = _peak_while(lambda: _merge(output))

    assert isinstance(raised, OutputInvalidError)
    assert "result 0 of the job's output is 5,000,047 bytes, over the 4,194,304-byte limit" \
        in str(raised)
    assert peak < 16_000_000  # bounded by the 4 MiB limit, not by the result


def test_an_unknown_job_key_is_named_within_the_message_bound():
    data = b'{"job": {"' + b"k" * 5000 + b'": 1}, "requests": [{"SeedItems": ["A"]}]}'

    with pytest.raises(InputError) as info:
        run_prepare(data)

    assert info.value.message.startswith("job.kkkk")
    assert "is not a known job setting" in info.value.message
    assert len(info.value.message) <= MAX_MESSAGE_CHARS


def test_a_key_that_is_not_valid_json_text_is_invalid_input_saying_where():
    data = b'{"\\ud800": 1, "requests": [{"SeedItems": ["A"]}]}'

    with pytest.raises(InputError) as info:
        run_prepare(data)

    assert info.value.message.startswith("the requests file is not valid JSON at byte 1: ")
    assert "surrogate" in info.value.message
