"""Error codes survive the trip through a message; names follow docs/design.md."""

from __future__ import annotations

import hashlib

import pytest

from recobatch import errors, naming


@pytest.mark.parametrize(("cls", "code"), [
    (errors.InputError, "InvalidInput"), (errors.InputTooLargeError, "InputTooLarge"),
    (errors.UpstreamRejected, "UpstreamRejected"), (errors.TransientError, "UpstreamUnavailable"),
    (errors.BusyError, "UpstreamUnavailable"), (errors.JobFailedError, "UpstreamJobFailed"),
    (errors.OutputInvalidError, "OutputInvalid"), (errors.JobTimedOutError, "JobTimedOut"),
    (errors.CancelledError, "Cancelled"), (errors.ConfigurationError, "ConfigurationError"),
    (errors.StorageError, "StorageError"),
])
def test_str_is_code_colon_sentence_and_code_of_recovers_it(cls, code):
    exc = cls("something plain happened.")

    assert str(exc) == f"{code}: something plain happened."
    assert errors.code_of(exc) == code
    wrapped = f"Activity function 'x' failed: {exc}\n  File ..."
    assert errors.code_of(wrapped) == code
    assert errors.message_of(wrapped).startswith("something plain happened.")


def test_code_of_unknown_text_is_internal_error():
    assert errors.code_of("KeyError: 'x'") == "InternalError"
    assert errors.code_of(None) == "InternalError"


def test_upstream_error_carries_status_code_and_operation():
    exc = errors.BusyError("busy.", retry_after=7, status=409, error_code="Conflict",
                           operation_id="op1")

    assert (exc.status, exc.error_code, exc.operation_id, exc.retry_after) == (
        409, "Conflict", "op1", 7)
    assert isinstance(exc, errors.UpstreamError)


def test_instance_id_is_sha256_of_container_name_and_bare_etag():
    expected = "rb-" + hashlib.sha256(b"batch-input/a/b.json@0x8DC").hexdigest()[:32]

    assert naming.instance_id("batch-input", "a/b.json", '"0x8DC"') == expected
    assert naming.instance_id("batch-input", "a/b.json", "0x8DC") == expected
    assert naming.instance_id("batch-input", "a/b.json", "0x8DD") != expected


def test_work_and_output_names():
    assert naming.chunk_input_blob("rb-1", 1) == "rb-1/chunk-00001.json"
    assert naming.chunk_index_blob("rb-1", "chunk-00002") == "rb-1/chunk-00002.index.json"
    assert naming.chunk_output_blob("rb-1", {"name": "chunk-00003"}) == "rb-1/chunk-00003.out.json"
    assert naming.chunk_error_blob("rb-1", 4) == "rb-1/chunk-00004.err.txt"
    assert naming.rejected_blob("rb-1") == "rb-1/rejected.jsonl"
    assert naming.cancel_blob("rb-1") == "rb-1/_CANCEL"
    assert naming.chunk_orchestration_id("rb-1", 12) == "rb-1:chunk-00012"
    assert naming.results_blob("in/day.1.json") == "in/day.1.json/results.json"
    assert naming.errors_blob("plain") == "plain/errors.txt"
    assert naming.success_marker_blob("x.jsonl") == "x.jsonl/_SUCCESS"
    assert naming.failed_marker_blob("x.jsonl") == "x.jsonl/_FAILED"
    assert naming.chunk_number("chunk-00042") == 42


def test_each_input_name_owns_its_own_output_folder():
    # report.json and report.jsonl are two inputs (two runs): one folder would let either
    # overwrite the other's results and delete its marker.
    names = ["report.json", "report.jsonl", "report.ndjson", "report", "d/report.json"]

    prefixes = [naming.output_prefix(name) for name in names]

    assert prefixes == ["report.json/", "report.jsonl/", "report.ndjson/", "report/",
                        "d/report.json/"]


@pytest.mark.parametrize("bad", [0, -1, "chunk-1", "other", True])
def test_bad_chunk_names_are_refused(bad):
    with pytest.raises(ValueError):
        naming.chunk_name(bad)
