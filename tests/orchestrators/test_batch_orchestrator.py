"""Replay tests of batch_orchestrator: the real generator driven through the Durable SDK."""

from __future__ import annotations

import json

import pytest
from history import FAIL, drive
from scenarios import MERGED, RUN_ID, batch_responder, chunk_done, host_failure, prepared

from recobatch import errors

CHUNK_IDS = [f"{RUN_ID}:chunk-{n:05d}" for n in range(1, 6)]


def marker_of(run) -> dict:
    """The input of the (last) write_marker action."""
    action = [a for a in run.actions if a.get("functionName") == "write_marker"][-1]
    return json.loads(action["input"])


def test_first_action_is_prepare_with_names_only(batch_run):
    run = batch_run()

    run.episode()

    assert run.names() == ["prepare_batch"]
    assert run.only(name="prepare_batch").input == {
        "instanceId": RUN_ID, "container": "batch-input", "name": "daily/requests.json",
        "etag": "0x8DC0FFEE"}
    assert run.custom_status["phase"] == "preparing"


def test_caller_job_overrides_are_passed_to_prepare(batch_run):
    run = batch_run()
    run.input["job"] = {"numberOfResults": 3}

    run.episode()

    assert run.only(name="prepare_batch").input["job"] == {"numberOfResults": 3}


@pytest.mark.parametrize("code", ["InvalidInput", "InputTooLarge"])
def test_refused_input_writes_failed_marker_and_contacts_no_upstream(batch_run, code):
    run = batch_run()

    def respond(item, _run):
        if item.name == "prepare_batch":
            return (FAIL, f"Activity function 'prepare_batch' failed: {code}: line 3 is bad.")
        return {"name": "daily/requests.json/_FAILED"}

    drive(run, respond)

    assert run.names() == ["prepare_batch", "write_marker"]
    payload = marker_of(run)
    assert payload["kind"] == "failed" and payload["inputName"] == "daily/requests.json"
    assert payload["marker"]["code"] == code
    assert payload["marker"]["message"] == "line 3 is bad."
    assert run.output["status"] == "Failed" and run.output["code"] == code
    assert run.state.get("error") is None  # a refused input is a finished run, not a crash


def test_fan_out_keeps_at_most_max_concurrent_jobs_in_flight(batch_run):
    run = batch_run(maxConcurrentJobs=2)
    run.episode()
    run.complete(run.only(name="prepare_batch"), prepared(5))

    run.episode()
    first_window = [item.instance_id for item in run.waiting("suborchestration")]
    run.complete(run.waiting("suborchestration")[0], chunk_done(run.waiting()[0]))
    run.episode()
    second_window = [item.instance_id for item in run.waiting("suborchestration")]

    assert first_window == CHUNK_IDS[:2]
    assert second_window == CHUNK_IDS[1:3]
    assert run.names().count("chunk_orchestrator") == 3


def test_window_of_three_starts_three_chunks_with_their_settings(batch_run):
    run = batch_run(maxConcurrentJobs=3, pollInitialSeconds=2, pollMaxSeconds=30)
    run.episode()
    run.complete(run.only(name="prepare_batch"), prepared(5))

    run.episode()

    started = run.waiting("suborchestration")
    assert [item.instance_id for item in started] == CHUNK_IDS[:3]
    assert started[0].input == {
        "instanceId": RUN_ID, "chunk": "chunk-00001", "inputName": "daily/requests.json",
        "job": prepared(1)["job"], "stage": False,
        "settings": {"pollInitial": 2, "pollMax": 30, "timeoutMinutes": 30}}


def test_custom_status_shows_progress_and_running_chunk_ids(batch_run):
    run = batch_run(maxConcurrentJobs=2)
    run.episode()
    run.complete(run.only(name="prepare_batch"), prepared(5))
    run.episode()
    run.complete(run.waiting("suborchestration")[0], chunk_done(run.waiting()[0]))

    run.episode()

    assert run.custom_status == {
        "phase": "running", "requests": 50,
        "chunks": {"total": 5, "running": 2, "succeeded": 1, "failed": 0},
        "runningChunks": CHUNK_IDS[1:3], "output": "batch-output/daily/requests.json/"}


def test_merge_comes_after_all_chunks_and_the_success_marker_last(batch_run):
    run = batch_run(maxConcurrentJobs=2)

    drive(run, batch_responder(5))

    names = run.names()
    assert names[-2:] == ["merge_results", "write_marker"]
    assert names.count("chunk_orchestrator") == 5
    merge = json.loads(run.actions[-2]["input"])
    assert merge == {"instanceId": RUN_ID, "container": "batch-input",
                     "inputName": "daily/requests.json", "etag": "0x8DC0FFEE",
                     "chunks": [{"name": f"chunk-{n:05d}", "status": "Succeeded"}
                                for n in range(1, 6)]}
    payload = marker_of(run)
    assert payload["kind"] == "success"
    assert payload["marker"]["counts"] == {"requests": 50, "valid": 50, "rejected": 0,
                                           **MERGED["counts"]}
    assert payload["marker"]["outputs"] == [MERGED["results"], MERGED["errors"]]
    assert [c["name"] for c in payload["marker"]["chunks"]] == [
        f"chunk-{n:05d}" for n in range(1, 6)]
    assert run.output["status"] == "Succeeded"
    assert run.custom_status["phase"] == "completed"


def test_failed_chunk_gives_failed_marker_listing_the_chunk_and_its_message(batch_run):
    run = batch_run(maxConcurrentJobs=1)
    bad = {"chunk-00002": ("Failed", "UpstreamJobFailed", "the model has no active build")}

    drive(run, batch_responder(3, bad))

    payload = marker_of(run)
    assert run.names()[-2:] == ["merge_results", "write_marker"]
    assert payload["kind"] == "failed"
    assert payload["marker"]["code"] == "UpstreamJobFailed"
    failed = payload["marker"]["failedChunks"]
    assert [(c["name"], c["status"], c["operationId"], c["message"]) for c in failed] == [
        ("chunk-00002", "Failed", "op-chunk-00002", "the model has no active build")]
    assert "chunk-00002" in payload["marker"]["message"]
    assert run.output["status"] == "Failed" and run.output["chunks"]["failed"] == 1


def test_timed_out_chunk_gives_job_timed_out(batch_run):
    run = batch_run()

    drive(run, batch_responder(2, {"chunk-00001": ("TimedOut", "JobTimedOut", "too slow")}))

    assert marker_of(run)["marker"]["code"] == "JobTimedOut"


def test_cancel_event_stops_new_chunks_and_writes_cancelled_marker(batch_run):
    run = batch_run(maxConcurrentJobs=2)
    run.episode()
    run.complete(run.only(name="prepare_batch"), prepared(5))
    run.episode()

    run.raise_event("cancel")
    run.episode()  # the run now waits for its two running chunks only
    started_after_cancel = run.names().count("chunk_orchestrator")
    phase = run.custom_status["phase"]
    for item in run.waiting("suborchestration"):
        run.complete(item, chunk_done(item, "Cancelled", "Cancelled", "the run was cancelled."))
    drive_rest = batch_responder(5)
    run.episode()
    while not run.done:
        for item in run.waiting():
            run.complete(item, drive_rest(item, run))
        run.episode()

    assert started_after_cancel == 2 and phase == "cancelling"
    merge = json.loads([a for a in run.actions if a.get("functionName") == "merge_results"][0]
                       ["input"])
    assert [c["status"] for c in merge["chunks"]] == ["Cancelled"] * 5
    payload = marker_of(run)
    assert payload["kind"] == "failed" and payload["marker"]["code"] == "Cancelled"
    assert [c["name"] for c in payload["marker"]["failedChunks"]] == [
        f"chunk-{n:05d}" for n in range(1, 6)]


def test_crashed_chunk_sub_orchestration_counts_as_failed_with_its_code(batch_run):
    run = batch_run()

    def respond(item, run_):
        if item.name == "chunk_orchestrator" and item.input["chunk"] == "chunk-00001":
            return (FAIL, "StorageError: the work container is gone.")
        return batch_responder(2)(item, run_)

    drive(run, respond)

    assert marker_of(run)["marker"]["code"] == "StorageError"
    assert marker_of(run)["marker"]["failedChunks"][0]["message"] == "the work container is gone."
    assert run.output["status"] == "Failed"


def test_unexpected_failure_still_writes_failed_marker_then_fails(batch_run):
    run = batch_run()

    def respond(item, run_):
        if item.name == "merge_results":
            return (FAIL, "Activity function 'merge_results' failed: StorageError: "
                          "could not write results.json.\nTraceback ...")
        return batch_responder(2)(item, run_)

    drive(run, respond)

    assert run.names()[-2:] == ["merge_results", "write_marker"]
    payload = marker_of(run)
    assert payload["marker"]["code"] == "StorageError"
    assert payload["marker"]["message"] == "could not write results.json."
    assert "StorageError" in run.state["error"]
    assert run.custom_status["phase"] == "failed"


def test_superseded_merge_writes_no_marker_and_completes_as_superseded(batch_run):
    run = batch_run()

    def respond(item, run_):
        if item.name == "merge_results":
            return (FAIL, "Activity function 'merge_results' failed: Superseded: input blob "
                          "daily/requests.json was replaced by a newer upload.\nTraceback ...")
        return batch_responder(2)(item, run_)

    drive(run, respond)

    assert run.done
    assert run.names()[-1] == "merge_results"
    assert "write_marker" not in run.names()
    assert run.state.get("error") is None  # completed, not failed
    assert run.output["status"] == "Superseded" and run.output["code"] == "Superseded"
    assert run.output["message"] == ("input blob daily/requests.json was replaced by a newer "
                                     "upload.")
    assert run.custom_status["phase"] == "superseded"
    assert "newer upload" in run.custom_status["message"]


def test_superseded_marker_write_completes_as_superseded_without_failed_marker(batch_run):
    run = batch_run()

    def respond(item, run_):
        if item.name == "write_marker":
            return (FAIL, "Activity function 'write_marker' failed: Superseded: input blob "
                          "daily/requests.json was deleted; the run writes no output.")
        return batch_responder(2)(item, run_)

    drive(run, respond)

    assert run.names()[-2:] == ["merge_results", "write_marker"]
    assert run.names().count("write_marker") == 1  # no _FAILED attempt after the refusal
    assert run.state.get("error") is None
    assert run.output["status"] == "Superseded"


def test_refused_input_of_a_replaced_blob_completes_as_superseded(batch_run):
    run = batch_run()

    def respond(item, _run):
        if item.name == "prepare_batch":
            return (FAIL, "InvalidInput: blob daily/requests.json changed since the run started.")
        return (FAIL, "Superseded: input blob daily/requests.json was replaced by a newer upload.")

    drive(run, respond)

    assert run.names() == ["prepare_batch", "write_marker"]
    assert run.state.get("error") is None
    assert run.output["status"] == "Superseded" and run.output["code"] == "Superseded"


def test_marker_payload_names_the_input_blob_version(batch_run):
    run = batch_run()

    drive(run, batch_responder(2))

    payload = marker_of(run)
    assert (payload["container"], payload["inputName"], payload["etag"]) == (
        "batch-input", "daily/requests.json", "0x8DC0FFEE")


def test_chunks_finishing_out_of_order_each_start_once_in_order(batch_run):
    run = batch_run(maxConcurrentJobs=2)
    respond = batch_responder(5)
    run.episode()

    while not run.done:  # one completion per episode, always the newest chunk first
        timers = run.waiting("timer")
        if timers:
            run.fire(timers[0])
        else:
            item = run.waiting()[-1]
            run.complete(item, respond(item, run))
        run.episode()

    ids = [a["instanceId"] for a in run.actions if a.get("functionName") == "chunk_orchestrator"]
    assert ids == CHUNK_IDS
    assert run.output["status"] == "Succeeded" and run.output["chunks"]["succeeded"] == 5


def test_nothing_secret_is_scheduled_or_recorded(batch_run):
    run = batch_run()

    drive(run, batch_responder(3))

    text = json.dumps(run.history) + json.dumps(run.actions) + json.dumps(run.custom_status)
    for secret_marker in ("sig=", "AccountKey", "Ocp-Apim-Subscription-Key", "sasBlobToken"):
        assert secret_marker not in text


# The SDK warns when an event arrives before anything waits for it; it buffers it (the point).
@pytest.mark.filterwarnings("ignore:Potential duplicate Task completion")
def test_cancel_raised_before_the_fan_out_starts_no_more_than_the_first_window(batch_run):
    run = batch_run(maxConcurrentJobs=2)
    run.episode()
    run.raise_event("cancel")  # buffered: the run is still preparing
    run.episode()
    respond = batch_responder(5, {f"chunk-{n:05d}": ("Cancelled", "Cancelled", "flag set")
                                  for n in (1, 2)})

    drive(run, respond)

    assert run.names().count("chunk_orchestrator") == 2
    assert marker_of(run)["marker"]["code"] == "Cancelled"
    assert run.output["status"] == "Failed" and run.output["code"] == "Cancelled"


def test_cancel_arriving_as_the_last_chunk_succeeds_keeps_the_run_succeeded(batch_run):
    # Every chunk succeeded: the results are complete, so the run is not "not all succeeded".
    run = batch_run(maxConcurrentJobs=1)
    run.episode()
    run.complete(run.only(name="prepare_batch"), prepared(1))
    run.episode()
    (chunk,) = run.waiting("suborchestration")
    run.raise_event("cancel")
    run.complete(chunk, chunk_done(chunk))
    run.episode()

    drive(run, batch_responder(1))

    assert marker_of(run)["kind"] == "success"
    assert run.output["status"] == "Succeeded" and run.output["code"] is None


def test_window_stays_full_when_an_older_chunk_finishes_before_a_newer_one(batch_run):
    # The extension awaits each action in turn, and the SDK's WhenAny for a refill lists only
    # the chunk it starts: the run must not depend on that chunk finishing first.
    run = batch_run(maxConcurrentJobs=2)
    run.episode()
    run.complete(run.only(name="prepare_batch"), prepared(5))
    run.episode()
    first, second = run.waiting("suborchestration")
    run.complete(first, chunk_done(first))
    for _ in range(3):  # let the refill settle (a timer at "now" may be part of it)
        run.episode()
        for timer in run.waiting("timer"):
            run.fire(timer)

    run.complete(second, chunk_done(second))  # older than chunk 3, which still runs
    for _ in range(3):
        run.episode()
        for timer in run.waiting("timer"):
            run.fire(timer)

    running = [item.instance_id for item in run.waiting("suborchestration")]
    assert running == CHUNK_IDS[2:4]
    assert run.custom_status["runningChunks"] == CHUNK_IDS[2:4]


def test_window_holds_max_concurrent_jobs_while_chunks_finish_oldest_first(batch_run):
    run = batch_run(maxConcurrentJobs=3)
    respond = batch_responder(8)
    run.episode()
    seen: list[int] = []

    while not run.done:
        timers = run.waiting("timer")
        if timers:  # settle a refill before the next chunk finishes
            run.fire(timers[0])
        else:
            chunks = run.waiting("suborchestration")
            if chunks:
                seen.append(len(chunks))
            item = chunks[0] if chunks else run.waiting()[0]
            run.complete(item, respond(item, run))
        run.episode()

    assert seen == [3, 3, 3, 3, 3, 3, 2, 1]
    assert run.output["status"] == "Succeeded" and run.output["chunks"]["succeeded"] == 8


def test_custom_status_stays_under_the_host_limit_with_a_window_of_500(batch_run):
    from devhost.durable.replay import custom_status_error

    run = batch_run(maxConcurrentJobs=500)
    run.input["name"] = "d/" + "n" * 1000 + ".json"  # the longest blob names
    run.episode()
    run.complete(run.only(name="prepare_batch"), prepared(600))

    run.episode()

    assert run.custom_status["chunks"]["running"] == 500
    assert custom_status_error(run.custom_status) is None
    assert run.custom_status["runningChunks"][0] == f"{RUN_ID}:chunk-00001"
    assert len(run.custom_status["runningChunks"]) == 100


@pytest.mark.parametrize(("exc", "code", "sentence"), [
    (errors.StorageError("could not write results.json."), "StorageError",
     "could not write results.json."),
    (errors.ConfigurationError("RECO_MODEL_ID is not set."), "ConfigurationError",
     "RECO_MODEL_ID is not set."),
    (ValueError("unexpected"), "InternalError", "Activity function 'merge_results' failed:  "
                                                "ValueError: unexpected"),
])
def test_activity_failures_as_the_host_reports_them_give_the_code_and_the_plain_sentence(
        batch_run, exc, code, sentence):
    # The host prefixes the exception's class name, which for StorageError is the code again.
    run = batch_run()

    def respond(item, run_):
        if item.name == "merge_results":
            return host_failure("merge_results", exc)
        return batch_responder(2)(item, run_)

    drive(run, respond)

    marker = marker_of(run)["marker"]
    assert (marker["code"], marker["message"]) == (code, sentence)


def test_transient_storage_failures_of_merge_and_marker_are_retried_on_durable_timers(batch_run):
    run = batch_run()
    failures = {"merge_results": 2, "write_marker": 1}

    def respond(item, run_):
        if failures.get(item.name):
            failures[item.name] -= 1
            return host_failure(item.name, errors.StorageError(
                "cannot write blob daily/requests/results.json: 503 Server Busy."))
        return batch_responder(2)(item, run_)

    drive(run, respond)

    names = run.names()
    assert names[-8:] == ["merge_results", "timer", "merge_results", "timer", "merge_results",
                          "write_marker", "timer", "write_marker"]
    assert names.count("merge_results") == 3 and names.count("write_marker") == 2
    assert marker_of(run)["kind"] == "success"
    assert run.output["status"] == "Succeeded"


def test_storage_failing_for_good_fails_the_run_after_the_retries(batch_run):
    run = batch_run()

    def respond(item, run_):
        if item.name == "merge_results":
            return host_failure(item.name, errors.StorageError("cannot write blob: timeout."))
        return batch_responder(2)(item, run_)

    drive(run, respond)

    assert run.names().count("merge_results") == 5  # the first try and 4 retries
    assert marker_of(run)["marker"]["code"] == "StorageError"
    assert "StorageError" in run.state["error"]


def test_a_refused_merge_is_not_retried(batch_run):
    run = batch_run()

    def respond(item, run_):
        if item.name == "merge_results":
            return host_failure(item.name, errors.InputError("merge_results: chunks missing."))
        return batch_responder(2)(item, run_)

    drive(run, respond)

    assert run.names().count("merge_results") == 1
    assert marker_of(run)["marker"]["code"] == "InvalidInput"


def _awaiting_stage(item) -> dict:
    """A chunk whose job succeeded and whose output is there, left for the run to stage."""
    return {**chunk_done(item), "results": 0, "staged": False}


def test_a_finished_jobs_output_is_staged_beside_the_next_chunks_job(batch_run):
    run = batch_run(maxConcurrentJobs=1)
    run.episode()
    run.complete(run.only(name="prepare_batch"), prepared(2))
    run.episode()
    first = run.only(kind="suborchestration")

    run.complete(first, _awaiting_stage(first))
    run.episode()

    # window 1: the second chunk's job starts while the first chunk's output is staged
    assert [i.instance_id for i in run.waiting("suborchestration")] == CHUNK_IDS[1:2]
    stage = run.only(name="verify_output")
    assert stage.input == {"instanceId": RUN_ID, "chunk": "chunk-00001",
                           "inputName": "daily/requests.json"}
    part = {"chunk": 1, "results": 10, "blocks": 1, "size": 99}
    run.complete(stage, {"present": True, "valid": True, "results": 10, "message": "",
                         "part": part})
    second = run.only(kind="suborchestration")
    run.complete(second, chunk_done(second))  # staged by its own chunk (a part-less answer)
    run.episode()

    merge = json.loads([a for a in run.actions
                        if a.get("functionName") == "merge_results"][-1]["input"])
    assert merge["chunks"][0] == {"name": "chunk-00001", "status": "Succeeded", "part": part}
    assert "staged" not in json.dumps(run.custom_status)


def test_an_output_found_unfit_when_staged_fails_its_chunk_with_output_invalid(batch_run):
    run = batch_run(maxConcurrentJobs=1)

    def respond(item, _run):
        if item.name == "chunk_orchestrator":
            return _awaiting_stage(item)
        if item.name == "verify_output":
            return {"present": True, "valid": False, "results": 0,
                    "message": f"{item.input['chunk']}: the job's output holds 3 results"}
        return batch_responder(2)(item, _run)

    drive(run, respond)

    payload = marker_of(run)
    assert payload["marker"]["code"] == errors.OUTPUT_INVALID
    assert run.names().count("verify_output") == 2
    assert all(c["status"] == "Failed" for c in payload["marker"]["failedChunks"])
