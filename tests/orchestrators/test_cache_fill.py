"""Replay tests of the recommendations cache in a run: who fills it, with what, and the tally."""

from __future__ import annotations

import json

from history import FAIL, drive
from scenarios import RUN_ID, batch_responder, chunk_done, prepared

PART = {"chunk": 1, "results": 10, "blocks": 1, "size": 99}


def _marker(run) -> dict:
    action = [a for a in run.actions if a.get("functionName") == "write_marker"][-1]
    return json.loads(action["input"])["marker"]


def _responder(chunks: int, fill=None, job: dict | None = None):
    base = batch_responder(chunks)

    def respond(item, run):
        if item.name == "prepare_batch":
            prep = prepared(chunks)
            prep["job"].update(job or {})
            return prep
        if item.name == "chunk_orchestrator":
            return {**chunk_done(item), "results": 0, "staged": False}
        if item.name == "verify_output":
            return {"present": True, "valid": True, "results": 10, "message": "", "part": PART}
        if item.name == "fill_cache":
            return fill(item) if fill else {"rows": 10, "failed": 0}
        return base(item, run)

    return respond


def _fills(run) -> list[dict]:
    return [json.loads(a["input"]) for a in run.actions
            if a.get("functionName") == "fill_cache"]


def test_each_verified_chunk_fills_the_cache_with_names_only_and_the_marker_sums(batch_run):
    run = batch_run(maxConcurrentJobs=1, cacheTable="recocache")

    drive(run, _responder(3, job={"buildId": 42}))

    fills = _fills(run)
    assert [f["chunk"] for f in fills] == ["chunk-00001", "chunk-00002", "chunk-00003"]
    assert fills[0] == {"instanceId": RUN_ID, "chunk": "chunk-00001", "table": "recocache",
                        "partition": "m-1.42", "apiName": "ItemRecommend",
                        "includeMetadata": False}
    assert _marker(run)["cache"] == {"table": "recocache", "partition": "m-1.42",
                                     "rows": 30, "failed": 0}
    assert run.output["status"] == "Succeeded"


def test_a_fill_that_fails_for_good_counts_failed_rows_and_the_run_still_succeeds(batch_run):
    run = batch_run(maxConcurrentJobs=2, cacheTable="recocache")
    fail = (FAIL, "StorageError: chunk-00002: the job's output blob is missing.")

    drive(run, _responder(2, fill=lambda item: fail if item.input["chunk"] == "chunk-00002"
                          else {"rows": 9, "failed": 1, "message": "a row is too big."}))

    cache = _marker(run)["cache"]
    assert (cache["rows"], cache["failed"]) == (9, 11)
    assert cache["message"] == "a row is too big."
    assert run.names().count("fill_cache") == 2
    assert run.output["status"] == "Succeeded"


def test_no_table_or_a_file_that_opts_out_fills_nothing(batch_run):
    without = drive(batch_run(), _responder(2))
    opted_out = drive(batch_run(cacheTable="recocache"), _responder(2, job={"cache": False}))

    for run in (without, opted_out):
        assert "fill_cache" not in run.names()
        assert "cache" not in _marker(run)
        assert run.output["status"] == "Succeeded"


def test_a_reruns_reused_chunks_fill_the_cache_from_the_earlier_work_folder(batch_run):
    earlier = "rb-ffffffffffffffffffffffffffffffff"
    run = batch_run(cacheTable="recocache")
    run.input.update(rerunOf=earlier, workId=earlier)
    reused = {"chunk": "chunk-00002", "operationId": "op-old", "results": 10,
              "startedAt": "2026-01-01T11:00:00.000000Z",
              "endedAt": "2026-01-01T11:01:00.000000Z"}
    base = _responder(2)

    def respond(item, _run):
        if item.name == "prepare_rerun":
            return {**prepared(2), "reused": [reused]}
        return base(item, _run)

    drive(run, respond)

    fills = {f["chunk"]: f for f in _fills(run)}
    assert set(fills) == {"chunk-00001", "chunk-00002"}
    assert fills["chunk-00002"]["workId"] == earlier
    assert _marker(run)["cache"]["rows"] == 20
