"""Replay tests of a re-run: reused chunks are not started, the others run in the earlier
run's work folder, and the marker says what was reused."""

from __future__ import annotations

import json

from history import drive
from scenarios import RUN_ID, batch_responder, prepared

EARLIER = "rb-ffffffffffffffffffffffffffffffff"
REUSED = {"chunk": "chunk-00002", "operationId": "op-old-2",
          "startedAt": "2026-01-01T11:00:00.000000Z", "endedAt": "2026-01-01T11:01:00.000000Z",
          "results": 10}


PART = {"chunk": 2, "results": 10, "blocks": 1, "size": 500}
VERIFIED = {"present": True, "valid": True, "results": 10, "message": "", "part": PART}


def rerun_responder(chunks: int = 3):
    base = batch_responder(chunks)

    def respond(item, run):
        if item.name == "prepare_rerun":
            return {**prepared(chunks), "reused": [REUSED]}
        if item.name == "verify_output":
            return VERIFIED
        return base(item, run)

    return respond


def _rerun(batch_run):
    run = batch_run()
    run.input.update(rerunOf=EARLIER, workId=EARLIER)
    return run


def test_rerun_prepares_from_the_earlier_run_with_names_only(batch_run):
    run = _rerun(batch_run)

    run.episode()

    assert run.names() == ["prepare_rerun"]
    assert run.only(name="prepare_rerun").input == {
        "instanceId": RUN_ID, "rerunOf": EARLIER, "workId": EARLIER,
        "container": "batch-input", "inputName": "daily/requests.json", "etag": "0x8DC0FFEE"}


def test_reused_chunks_are_not_started_and_the_others_use_the_earlier_work_folder(batch_run):
    run = _rerun(batch_run)

    drive(run, rerun_responder())

    started = [json.loads(a["input"]) for a in run.actions
               if a.get("functionName") == "chunk_orchestrator"]
    assert [s["chunk"] for s in started] == ["chunk-00001", "chunk-00003"]
    assert all(s["workId"] == EARLIER for s in started)
    merge = json.loads([a for a in run.actions
                        if a.get("functionName") == "merge_results"][0]["input"])
    assert merge["workId"] == EARLIER
    assert [c["name"] for c in merge["chunks"]] == ["chunk-00001", "chunk-00002", "chunk-00003"]
    assert merge["chunks"][1]["part"] == PART  # staged anew for this run, before the merge
    verify = json.loads([a for a in run.actions
                         if a.get("functionName") == "verify_output"][0]["input"])
    assert verify == {"instanceId": RUN_ID, "chunk": "chunk-00002",
                      "inputName": "daily/requests.json", "workId": EARLIER}


def test_a_reused_chunk_that_could_not_be_staged_is_left_to_the_merge(batch_run):
    from history import FAIL

    run = _rerun(batch_run)
    respond = rerun_responder()

    def failing(item, run_):
        if item.name == "verify_output":
            return (FAIL, "Activity function 'verify_output' failed: StorageError: down.")
        return respond(item, run_)

    drive(run, failing)

    merge = json.loads([a for a in run.actions
                        if a.get("functionName") == "merge_results"][0]["input"])
    assert "part" not in merge["chunks"][1]
    assert run.output["status"] == "Succeeded"


def test_the_marker_names_the_earlier_run_and_what_was_reused(batch_run):
    run = _rerun(batch_run)

    drive(run, rerun_responder())

    marker = json.loads([a for a in run.actions
                         if a.get("functionName") == "write_marker"][-1]["input"])["marker"]
    assert marker["kind"] == "success" and marker["rerunOf"] == EARLIER
    assert [(c["name"], c["reused"], c["operationId"]) for c in marker["chunks"]] == [
        ("chunk-00001", False, "op-chunk-00001"), ("chunk-00002", True, "op-old-2"),
        ("chunk-00003", False, "op-chunk-00003")]
    assert run.output["status"] == "Succeeded"


def test_a_first_run_has_no_rerun_fields(batch_run):
    run = batch_run()

    drive(run, batch_responder(2))

    marker = json.loads([a for a in run.actions
                         if a.get("functionName") == "write_marker"][-1]["input"])["marker"]
    assert "rerunOf" not in marker and all("reused" not in c for c in marker["chunks"])
    assert all("workId" not in json.loads(a["input"]) for a in run.actions
               if a.get("functionName") in ("chunk_orchestrator", "merge_results"))


def test_a_rerun_chunk_submits_and_verifies_the_earlier_run_s_work_blobs(chunk_run):
    from scenarios import chunk_responder

    run = chunk_run()
    run.input["workId"] = EARLIER

    drive(run, chunk_responder())

    payloads = {a["functionName"]: json.loads(a["input"]) for a in run.actions
                if a.get("functionName") in ("submit_chunk", "verify_output",
                                             "is_cancel_requested")}
    assert payloads["submit_chunk"]["workId"] == EARLIER
    assert payloads["verify_output"]["workId"] == EARLIER
    assert payloads["is_cancel_requested"]["instanceId"] == RUN_ID  # the run's own flag
    assert run.output["status"] == "Succeeded"
