"""Inputs and scripted activity answers shared by the orchestrator replay tests."""

from __future__ import annotations

from typing import Any

from history import FAIL, OrchestrationRun, Scheduled

from devhost.durable.activities import failure_fields

RUN_ID = "rb-0123456789abcdef0123456789abcdef"


def chunk_input(**settings: Any) -> dict:
    merged = {"pollInitial": 5, "pollMax": 60, "timeoutMinutes": 30, **settings}
    return {"instanceId": RUN_ID, "chunk": "chunk-00001", "inputName": "daily/requests.json",
            "job": {"numberOfResults": 5}, "settings": merged}


def batch_input(**settings: Any) -> dict:
    merged = {"maxConcurrentJobs": 2, "pollInitialSeconds": 5, "pollMaxSeconds": 60,
              "timeoutMinutes": 30, "outputContainer": "batch-output", **settings}
    return {"container": "batch-input", "name": "daily/requests.json", "etag": "0x8DC0FFEE",
            "size": 1234, "job": {}, "settings": merged}


def prepared(chunks: int) -> dict:
    return {"inputName": "daily/requests.json", "etag": "0x8DC0FFEE", "size": 1234,
            "requests": chunks * 10, "valid": chunks * 10, "rejected": 0,
            "chunks": [{"name": f"chunk-{n:05d}", "requests": 10, "bytes": 500}
                       for n in range(1, chunks + 1)],
            "job": {"apiName": "ItemRecommend", "modelId": "m-1", "numberOfResults": 10}}


def chunk_done(item: Scheduled, status: str = "Succeeded", code: str | None = None,
               message: str = "") -> dict:
    return {"chunk": item.input["chunk"], "status": status, "code": code,
            "operationId": "op-" + item.input["chunk"], "message": message,
            "startedAt": "2026-01-01T12:00:00.000000Z", "endedAt": "2026-01-01T12:01:00.000000Z",
            "results": 10 if status == "Succeeded" else 0}


MERGED = {"results": {"name": "daily/requests.json/results.json", "size": 10, "md5": "x"},
          "errors": {"name": "daily/requests.json/errors.txt", "size": 0, "md5": "y"},
          "counts": {"results": 20, "errors": 0}}


def batch_responder(chunks: int, chunk_status: dict[str, tuple] | None = None):
    """Answer every activity of a run; chunk_status maps a chunk name to (status, code, msg)."""
    chunk_status = chunk_status or {}

    def respond(item: Scheduled, run: OrchestrationRun) -> Any:
        if item.name == "prepare_batch":
            return prepared(chunks)
        if item.name == "chunk_orchestrator":
            status = chunk_status.get(item.input["chunk"], ("Succeeded", None, ""))
            return chunk_done(item, *status)
        if item.name == "merge_results":
            return MERGED
        if item.name == "write_marker":
            return {"name": "daily/requests.json/_MARKER"}
        raise AssertionError(f"unexpected {item}")

    return respond


def chunk_responder(checks: list[Any] | None = None, verify: list[dict] | None = None,
                    submit: list[Any] | None = None):
    """Answer a chunk's activities from scripted lists (the last answer repeats)."""
    checks = list(checks or [{"status": "Succeeded", "percentComplete": 100, "message": ""}])
    verify = list(verify or [{"present": True, "valid": True, "results": 10, "message": ""}])
    submit = list(submit or [{"accepted": True, "operationId": "op-1", "batchId": "b-1"}])

    def next_of(answers: list[Any]) -> Any:
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return answer

    def respond(item: Scheduled, run: OrchestrationRun) -> Any:
        if item.name == "is_cancel_requested":
            return {"cancelled": False}
        if item.name == "submit_chunk":
            return next_of(submit)
        if item.name == "check_operation":
            return next_of(checks)
        if item.name == "verify_output":
            return next_of(verify)
        if item.name == "cancel_operation":
            return {"cancelled": True}
        raise AssertionError(f"unexpected {item}")

    return respond


def host_failure(activity: str, exc: BaseException) -> tuple:
    """A responder answer failing an activity exactly as the Functions host reports ``exc``."""
    try:
        raise exc
    except BaseException as raised:  # a real traceback, as the worker would send
        return (FAIL, *failure_fields(activity, raised))
