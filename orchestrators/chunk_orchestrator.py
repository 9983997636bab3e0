"""Sub-orchestration ``chunk_orchestrator``: one chunk's batch job, from submit to verified output.

Input ``{instanceId, chunk, job, settings: {pollInitial, pollMax, timeoutMinutes}, workId?,
resume?}`` (``workId``: a re-run's chunks are the earlier run's work blobs);
output ``{chunk, status, code, operationId, message, startedAt, endedAt, results}`` with
``status`` one of ``Succeeded | Failed | Cancelled | TimedOut | Rejected``. It never raises for
upstream failures: the batch orchestrator reads the status and code.

The deadline is ``start + timeoutMinutes`` on the orchestration clock. Every wait is a durable
timer raced against the ``cancel`` external event, so a cancel wakes the chunk at once; and the
run's cancel flag is read before every submit and on every poll (``check_operation`` reports
it), because the HTTP cancel can miss a chunk that started just after it read the run's
``runningChunks``.

A job may be polled for hours (``timeoutMinutes`` defaults to 6 h): each poll adds about 8
history events, and every episode replays the whole history. So after ``POLLS_PER_EXECUTION``
polls (or ``SUBMITS_PER_EXECUTION`` busy submits) the chunk continues as new, carrying the
operation id, its start, the deadline and the next poll interval (``resume``): no execution's
history passes 200 events, whatever the job's length. The parent sees one completion, with
the last execution's output.
"""

from __future__ import annotations

import azure.durable_functions as df

from activities import (
    cancel_operation,
    check_operation,
    is_cancel_requested,
    submit_chunk,
    verify_output,
)
from orchestrators.blueprint import bp
from orchestrators.chunk_run import CANCELLED, FAILED, REJECTED, SUCCEEDED, TIMED_OUT, ChunkRun, Gen
from orchestrators.clock import after
from orchestrators.failures import reason
from recobatch import errors

# A job that reports Succeeded may still be flushing its output blob: look a few times.
VERIFY_ATTEMPTS = 4
# Submit failures with UpstreamUnavailable (5xx after the client's own retries) get this many
# more tries; a timeout on submit may have created the job, so we do not insist forever.
SUBMIT_UNAVAILABLE_TRIES = 3
# History budget of one execution (about 8 events a poll, 12 a busy submit; see the docstring).
POLLS_PER_EXECUTION = 16
SUBMITS_PER_EXECUTION = 12
# What _submit and _poll return when the execution's budget is spent: continue as new.
CONTINUE = {"continue": True}


def _flag_set(run: ChunkRun) -> Gen:
    """Is the run's cancel flag blob there? A failure to look is not a reason to stop."""
    try:
        flag = yield run.context.call_activity(is_cancel_requested, run.ids())
    except Exception as exc:  # the event may still reach us, and every poll looks again
        run.log(f"is_cancel_requested failed: {errors.code_of(exc)}")
        return False
    return bool(flag.get("cancelled"))


def _submit(run: ChunkRun) -> Gen:
    """Submit until accepted; return a final result dict, CONTINUE, or None once the job runs."""
    payload = {"instanceId": run.instance_id, "chunk": run.chunk, "job": run.job, **run.work}
    for _ in range(SUBMITS_PER_EXECUTION):
        if run.cancel.is_completed or (yield from _flag_set(run)):
            return run.result(CANCELLED, "the run was cancelled before the job was submitted.")
        if run.past_deadline():
            return run.result(TIMED_OUT, "the service stayed busy until the chunk's deadline.")
        try:
            answer = yield run.context.call_activity(submit_chunk, payload)
        except Exception as exc:  # the SDK hands activity failures over as plain Exception
            code, sentence = reason(exc)
            if code == errors.UPSTREAM_UNAVAILABLE and run.unavailable < SUBMIT_UNAVAILABLE_TRIES:
                run.unavailable += 1
                yield from run.wait(run.poll_initial)  # a cancel is seen at the loop's top
                continue
            status = REJECTED if code == errors.UPSTREAM_REJECTED else FAILED
            return run.result(status, sentence, code=code)
        if answer.get("accepted"):
            run.operation_id = answer["operationId"]
            # accepted at 0 %: the first poll's progress already gives the job's rate
            run.progress_seen = (run.context.current_utc_datetime, 0.0)
            run.log(f"submitted as operation {run.operation_id}")
            return None
        retry_after = answer.get("retryAfterSeconds")
        retry_after = run.poll_initial if retry_after is None else float(retry_after)
        run.log(f"service busy, retrying in {retry_after:g}s")
        yield from run.wait(min(max(retry_after, 1.0), run.poll_max))
    return CONTINUE


def _cancel_upstream(run: ChunkRun) -> Gen:
    """Ask the service to cancel the job; a failure here must not hide why we cancel."""
    try:
        yield run.context.call_activity(cancel_operation, {"operationId": run.operation_id,
                                                           **run.ids()})
    except Exception as exc:
        run.log(f"cancel_operation failed: {errors.code_of(exc)}")


def _poll(run: ChunkRun) -> Gen:
    """Poll the operation with backoff; return a final result dict, CONTINUE, or None on
    Succeeded."""
    for _ in range(POLLS_PER_EXECUTION):
        if (yield from run.wait(run.interval)):
            yield from _cancel_upstream(run)
            return run.result(CANCELLED, "the run was cancelled.")
        run.interval = min(run.interval * 2, run.poll_max)
        try:
            run.polls += 1
            state = yield run.context.call_activity(check_operation, {
                "operationId": run.operation_id, **run.ids(), "poll": run.polls})
        except Exception as exc:
            code, sentence = reason(exc)
            if code != errors.UPSTREAM_UNAVAILABLE:
                # The job may still run and hold the subscription's one job slot.
                yield from _cancel_upstream(run)
                return run.result(FAILED, sentence, code=code)
            state = {}  # transient: poll again until the deadline
        if state.get("cancelRequested"):
            yield from _cancel_upstream(run)
            return run.result(CANCELLED, "the run was cancelled.")
        status = state.get("status")
        if status == SUCCEEDED:
            return None
        if status == FAILED:
            return run.result(FAILED, state.get("message") or "the batch job failed.",
                              code=errors.UPSTREAM_JOB_FAILED)
        if status == CANCELLED:
            return run.result(CANCELLED, "the batch job was cancelled upstream.")
        run.interval = run.next_interval(state.get("percentComplete"))
        if run.past_deadline():
            yield from _cancel_upstream(run)
            return run.result(TIMED_OUT, "the batch job did not finish before the deadline.")
    return CONTINUE


def _verify(run: ChunkRun) -> Gen:
    """Check the output blob, waiting a little while it is not there yet."""
    payload = {"instanceId": run.instance_id, "chunk": run.chunk,
               "inputName": run.args["inputName"], **run.output_fields()}
    if run.args.get("stage") is False:
        payload["stage"] = False  # presence only: the batch orchestrator stages it
    for attempt in range(VERIFY_ATTEMPTS):
        try:
            found = yield run.context.call_activity(verify_output, payload)
        except Exception as exc:
            code, sentence = reason(exc)
            return run.result(FAILED, sentence, code=code)
        if found.get("present"):
            if found.get("valid"):
                outcome = run.result(SUCCEEDED, found.get("message") or "",
                                     results=int(found.get("results") or 0),
                                     part=found.get("part"))
                if found.get("staged") is False:
                    outcome["staged"] = False  # validated and staged by the batch orchestrator
                return outcome
            return run.result(FAILED, found.get("message") or "the output is not valid.",
                              code=errors.OUTPUT_INVALID)
        if attempt + 1 < VERIFY_ATTEMPTS:
            yield run.context.create_timer(after(run.context.current_utc_datetime,
                                                 run.poll_initial))
    return run.result(FAILED, "the job succeeded but its output blob never appeared.",
                      code=errors.OUTPUT_INVALID)


@bp.orchestration_trigger(context_name="context", input_type=dict)
def chunk_orchestrator(context: df.DurableOrchestrationContext) -> Gen:
    """Run one chunk's batch job: submit, poll, verify (see the module docstring)."""
    run = ChunkRun(context, context.get_input())
    outcome = None
    if run.phase in ("start", "submit"):
        outcome = yield from _submit(run)
        if outcome is CONTINUE:
            context.continue_as_new(run.carry("submit"))
            return None
    if outcome is None:
        outcome = yield from _poll(run)
        if outcome is CONTINUE:
            context.continue_as_new(run.carry("poll"))
            return None
    if outcome is None:
        outcome = yield from _verify(run)
    run.log(f"ended {outcome['status']}")
    return outcome
