"""Replay tests of chunk_orchestrator: the real generator driven through the Durable SDK."""

from __future__ import annotations

import json
from datetime import timedelta

from history import FAIL, T0, drive, parse_ts
from scenarios import RUN_ID, chunk_responder

RUNNING = {"status": "Running", "percentComplete": 10, "message": ""}
SUCCEEDED = {"status": "Succeeded", "percentComplete": 100, "message": ""}
BUSY = {"accepted": False, "retryAfterSeconds": 17, "reason": "another job runs"}


def timer_offsets(run) -> list[float]:
    """Seconds from the start of the run to each timer's fireAt, in scheduling order."""
    return [(parse_ts(a["fireAt"]) - T0).total_seconds()
            for a in run.actions if a["actionType"] == 5]


def gaps(offsets: list[float]) -> list[float]:
    return [b - a for a, b in zip([0.0, *offsets], offsets, strict=False)]


def test_first_actions_check_the_cancel_flag_then_submit(chunk_run):
    run = chunk_run()

    run.episode()
    run.complete(run.only(name="is_cancel_requested"), {"cancelled": False})
    run.episode()

    assert run.names() == ["is_cancel_requested", "submit_chunk"]
    assert run.only(name="submit_chunk").input == {
        "instanceId": RUN_ID, "chunk": "chunk-00001", "job": {"numberOfResults": 5}}


def test_cancel_flag_already_set_returns_cancelled_without_submitting(chunk_run):
    run = chunk_run()

    drive(run, lambda item, _run: {"cancelled": True})

    assert run.names() == ["is_cancel_requested"]
    assert run.output["status"] == "Cancelled" and run.output["code"] == "Cancelled"


def test_busy_waits_retry_after_on_a_durable_timer_then_resubmits(chunk_run):
    run = chunk_run()
    respond = chunk_responder(submit=[BUSY, BUSY, {"accepted": True, "operationId": "op-1",
                                                   "batchId": "b"}])

    drive(run, respond)

    names = run.names()
    assert names[:7] == ["is_cancel_requested", "submit_chunk", "timer", "wait:cancel",
                         "is_cancel_requested", "submit_chunk", "timer"]
    assert names.count("submit_chunk") == 3
    assert timer_offsets(run)[:2] == [17.0, 34.0]
    assert run.output["status"] == "Succeeded" and run.output["operationId"] == "op-1"


def test_busy_retry_after_is_clamped_between_one_second_and_poll_max(chunk_run):
    run = chunk_run()
    respond = chunk_responder(submit=[
        {"accepted": False, "retryAfterSeconds": 0.2, "reason": "busy"},
        {"accepted": False, "retryAfterSeconds": 900, "reason": "busy"},
        {"accepted": True, "operationId": "op-1", "batchId": "b"}])

    drive(run, respond)

    assert gaps(timer_offsets(run))[:2] == [1.0, 60.0]


def test_busy_until_the_deadline_times_out_without_cancelling_anything(chunk_run):
    run = chunk_run(timeoutMinutes=1)

    drive(run, chunk_responder(submit=[BUSY]))

    assert run.output["status"] == "TimedOut" and run.output["code"] == "JobTimedOut"
    assert "cancel_operation" not in run.names()
    assert max(timer_offsets(run)) == 60.0  # the last wait is cut at the deadline


def test_progress_shortens_the_wait_to_the_estimated_end_but_not_below_poll_initial(
        chunk_run):
    run = chunk_run()
    checks = [{**RUNNING, "percentComplete": p} for p in (10, 55, 90)] + [SUCCEEDED]

    drive(run, chunk_responder(checks=checks))

    # 10 % at 5 s, 55 % at 15 s: 10 s to go (not the 20 s backoff); 90 % at 25 s: 2.9 s to
    # go, waited as pollInitial (5 s) instead of the 20 s backoff.
    assert gaps(timer_offsets(run)) == [5, 10, 10, 5]


def test_the_first_poll_s_progress_counts_from_the_job_s_acceptance(chunk_run):
    run = chunk_run()
    checks = [{**RUNNING, "percentComplete": 80}, SUCCEEDED]

    drive(run, chunk_responder(checks=checks))

    # accepted at 0 s (0 %), 80 % at 5 s: about 1.3 s to go, so the next poll waits
    # pollInitial (5 s), not the 10 s backoff
    assert gaps(timer_offsets(run)) == [5, 5]


def test_poll_interval_doubles_from_poll_initial_to_poll_max(chunk_run):
    run = chunk_run()

    drive(run, chunk_responder(checks=[RUNNING] * 6 + [SUCCEEDED]))

    assert gaps(timer_offsets(run)) == [5, 10, 20, 40, 60, 60, 60]
    assert run.names().count("check_operation") == 7


def test_timeout_cancels_the_operation_and_returns_timed_out(chunk_run):
    run = chunk_run(timeoutMinutes=2)

    drive(run, chunk_responder(checks=[RUNNING]))

    assert run.names()[-2:] == ["check_operation", "cancel_operation"]
    assert json.loads(run.actions[-1]["input"]) == {"operationId": "op-1", "instanceId": RUN_ID,
                                                     "chunk": "chunk-00001"}
    assert run.output["status"] == "TimedOut" and run.output["code"] == "JobTimedOut"
    assert parse_ts(run.output["endedAt"]) == T0 + timedelta(minutes=2)


def test_cancel_event_while_polling_cancels_the_operation(chunk_run):
    run = chunk_run()
    respond = chunk_responder(checks=[RUNNING])

    sent: list[bool] = []

    def cancel_after_second_check(r) -> None:
        if r.names().count("check_operation") == 2 and not sent:
            sent.append(True)
            r.raise_event("cancel")

    drive(run, respond, between=cancel_after_second_check)

    assert run.names()[-1] == "cancel_operation"
    assert run.names().count("check_operation") == 2
    assert run.output["status"] == "Cancelled" and run.output["code"] == "Cancelled"
    assert run.output["operationId"] == "op-1"


def test_succeeded_job_is_verified_and_its_result_count_returned(chunk_run):
    run = chunk_run()

    drive(run, chunk_responder(checks=[RUNNING, SUCCEEDED]))

    assert run.names()[-2:] == ["check_operation", "verify_output"]
    assert json.loads(run.actions[-1]["input"]) == {"instanceId": RUN_ID, "chunk": "chunk-00001",
                                                    "inputName": "daily/requests.json"}
    out = run.output
    assert (out["chunk"], out["status"], out["code"], out["results"]) == (
        "chunk-00001", "Succeeded", None, 10)
    assert set(out) == {"chunk", "status", "code", "operationId", "message", "startedAt",
                        "endedAt", "results"}


def test_output_not_there_yet_is_checked_again_after_a_timer(chunk_run):
    run = chunk_run()
    absent = {"present": False, "valid": False, "results": 0, "message": "not found"}

    drive(run, chunk_responder(verify=[absent, absent,
                                       {"present": True, "valid": True, "results": 7,
                                        "message": ""}]))

    assert run.names()[-5:] == ["verify_output", "timer", "verify_output", "timer",
                                "verify_output"]
    assert run.output["status"] == "Succeeded" and run.output["results"] == 7


def test_output_never_appearing_fails_with_output_invalid(chunk_run):
    run = chunk_run()

    drive(run, chunk_responder(verify=[{"present": False, "valid": False, "results": 0,
                                        "message": ""}]))

    assert run.names().count("verify_output") == 4
    assert run.output["status"] == "Failed" and run.output["code"] == "OutputInvalid"


def test_invalid_output_fails_with_output_invalid(chunk_run):
    run = chunk_run()

    drive(run, chunk_responder(verify=[{"present": True, "valid": False, "results": 0,
                                        "message": "output is not JSON"}]))

    assert run.output["status"] == "Failed" and run.output["code"] == "OutputInvalid"
    assert run.output["message"] == "output is not JSON"


def test_failed_job_reports_upstream_job_failed_with_the_upstream_message(chunk_run):
    run = chunk_run()

    drive(run, chunk_responder(checks=[{"status": "Failed", "percentComplete": 0,
                                        "message": "model build 7 missing"}]))

    assert "verify_output" not in run.names()
    assert run.output["status"] == "Failed" and run.output["code"] == "UpstreamJobFailed"
    assert run.output["message"] == "model build 7 missing"


def test_transient_check_failures_are_polled_again(chunk_run):
    run = chunk_run()
    unavailable = (FAIL, "UpstreamUnavailable: the service answered 503.")

    drive(run, chunk_responder(checks=[unavailable, unavailable, SUCCEEDED]))

    assert run.names().count("check_operation") == 3
    assert run.output["status"] == "Succeeded"


def test_rejected_submit_returns_rejected_without_polling(chunk_run):
    run = chunk_run()
    rejected = (FAIL, "Activity function 'submit_chunk' failed: UpstreamRejected: the service "
                      "answered 401: invalid key.")

    drive(run, chunk_responder(submit=[rejected]))

    assert "check_operation" not in run.names()
    assert run.output["status"] == "Rejected" and run.output["code"] == "UpstreamRejected"
    assert run.output["message"] == "the service answered 401: invalid key."


def test_replaying_the_final_history_schedules_nothing_new(chunk_run):
    run = chunk_run()
    drive(run, chunk_responder(checks=[RUNNING, RUNNING, SUCCEEDED]))
    actions_before = list(run.actions)

    run.episode()  # one more episode with no new events: a pure replay

    assert run.actions == actions_before and run.new_actions == []
    assert run.done


def test_cancel_while_waiting_for_a_busy_service_submits_nothing_more(chunk_run):
    run = chunk_run()
    sent: list[bool] = []

    def cancel_once_busy(r) -> None:
        if r.waiting("timer") and not sent:
            sent.append(True)
            r.raise_event("cancel")

    drive(run, chunk_responder(submit=[BUSY]), between=cancel_once_busy)

    assert run.names().count("submit_chunk") == 1
    assert "cancel_operation" not in run.names()  # no job was accepted: nothing to cancel
    assert run.output["status"] == "Cancelled" and run.output["operationId"] is None


def test_unavailable_submit_is_tried_again_after_poll_initial(chunk_run):
    run = chunk_run()
    unavailable = (FAIL, "UpstreamUnavailable: the service answered 503.")

    drive(run, chunk_responder(submit=[unavailable, unavailable,
                                       {"accepted": True, "operationId": "op-9", "batchId": "b"}]))

    assert run.names().count("submit_chunk") == 3
    assert gaps(timer_offsets(run))[:2] == [5.0, 5.0]
    assert run.output["status"] == "Succeeded" and run.output["operationId"] == "op-9"


def test_submit_unavailable_for_good_fails_with_upstream_unavailable(chunk_run):
    run = chunk_run()

    drive(run, chunk_responder(submit=[(FAIL, "UpstreamUnavailable: connection refused.")]))

    assert run.names().count("submit_chunk") == 4
    assert run.output["status"] == "Failed" and run.output["code"] == "UpstreamUnavailable"


def test_check_failing_for_good_cancels_the_job_it_gives_up_on(chunk_run):
    # The job may still run upstream; left alone it would hold the subscription's one job slot.
    run = chunk_run()
    broken = (FAIL, "Activity function 'check_operation' failed: UpstreamRejected: the service "
                    "answered 404 for operation op-1.")

    drive(run, chunk_responder(checks=[RUNNING, broken]))

    assert run.names()[-2:] == ["check_operation", "cancel_operation"]
    assert json.loads(run.actions[-1]["input"]) == {"operationId": "op-1", "instanceId": RUN_ID,
                                                     "chunk": "chunk-00001"}
    assert run.output["status"] == "Failed" and run.output["code"] == "UpstreamRejected"


def test_busy_retry_after_zero_waits_one_second_not_poll_initial(chunk_run):
    run = chunk_run(pollInitial=5)
    respond = chunk_responder(submit=[
        {"accepted": False, "retryAfterSeconds": 0, "reason": "busy"},
        {"accepted": True, "operationId": "op-1", "batchId": "b"}])

    drive(run, respond)

    assert timer_offsets(run)[0] == 1.0


def test_a_job_polled_60_times_keeps_every_chunk_history_under_200_events(chunk_run):
    # (bench/orchestration_history.py shows 1,000 polls; 60 keep this test quick.)
    run = chunk_run(timeoutMinutes=24 * 60)

    drive(run, chunk_responder(checks=[RUNNING] * 59 + [SUCCEEDED]), max_episodes=2_000)

    assert run.output["status"] == "Succeeded" and run.output["results"] == 10
    assert run.names(run.all_actions).count("check_operation") == 60
    assert run.names(run.all_actions).count("submit_chunk") == 1
    assert run.max_history <= 200
    assert run.executions > 1


def test_continue_as_new_carries_the_operation_deadline_and_poll_interval(chunk_run):
    run = chunk_run(timeoutMinutes=40)

    drive(run, chunk_responder(checks=[RUNNING]), max_episodes=2_000)

    assert run.executions > 1
    assert run.output["status"] == "TimedOut" and run.output["operationId"] == "op-1"
    assert parse_ts(run.output["startedAt"]) == T0
    assert parse_ts(run.output["endedAt"]) == T0 + timedelta(minutes=40)
    checks = [json.loads(a["input"]) for a in run.all_actions
              if a.get("functionName") == "check_operation"]
    assert {c["operationId"] for c in checks} == {"op-1"}
    assert len(checks) == 4 + 39  # 5+10+20+40 s, then every 60 s until the deadline
    # the polls are numbered across executions (the polls-per-job metric reads the number)
    assert [c["poll"] for c in checks] == list(range(1, len(checks) + 1))
    cancel = [json.loads(a["input"]) for a in run.all_actions
              if a.get("functionName") == "cancel_operation"]
    assert cancel == [{"operationId": "op-1", "instanceId": RUN_ID, "chunk": "chunk-00001"}]


def test_a_service_busy_for_hours_keeps_every_chunk_history_under_200_events(chunk_run):
    run = chunk_run(timeoutMinutes=30)

    drive(run, chunk_responder(submit=[{"accepted": False, "retryAfterSeconds": 30,
                                        "reason": "busy"}]), max_episodes=2_000)

    assert run.output["status"] == "TimedOut"
    assert run.names(run.all_actions).count("submit_chunk") == 30 * 2
    assert run.max_history <= 200


def test_the_cancel_flag_is_checked_before_every_submit(chunk_run):
    run = chunk_run()
    flags = iter([False, False, True])

    def respond(item, run_):
        if item.name == "is_cancel_requested":
            return {"cancelled": next(flags)}
        return chunk_responder(submit=[BUSY])(item, run_)

    drive(run, respond)

    assert run.names().count("is_cancel_requested") == 3
    assert run.names().count("submit_chunk") == 2
    assert run.output["status"] == "Cancelled" and run.output["code"] == "Cancelled"


def test_a_cancel_flag_seen_by_a_poll_cancels_the_job_and_stops(chunk_run):
    # The chunk may have started after the HTTP cancel read runningChunks: no event reaches it.
    run = chunk_run()
    flagged = dict(RUNNING, cancelRequested=True)

    drive(run, chunk_responder(checks=[RUNNING, flagged]))

    checks = [json.loads(a["input"]) for a in run.actions
              if a.get("functionName") == "check_operation"]
    assert checks == [{"operationId": "op-1", "instanceId": RUN_ID, "chunk": "chunk-00001",
                       "poll": n} for n in (1, 2)]
    assert run.names()[-1] == "cancel_operation"
    assert run.output["status"] == "Cancelled" and run.output["operationId"] == "op-1"


def test_a_chunk_told_not_to_stage_asks_for_presence_only_and_says_so(chunk_run):
    run = chunk_run()
    run.input["stage"] = False

    drive(run, chunk_responder(checks=[SUCCEEDED], verify=[
        {"present": True, "valid": True, "results": 0, "message": "", "staged": False}]))

    verify = [a for a in run.actions if a.get("functionName") == "verify_output"][-1]
    assert json.loads(verify["input"])["stage"] is False
    assert run.output["status"] == "Succeeded" and run.output["staged"] is False
