"""One chunk run's state for ``chunk_orchestrator``: ids, settings, clock bounds, the cancel wait.

Deterministic: the clock is the orchestration clock, the waits are durable timers. What must
survive a continue-as-new (the phase, the operation id, the start, the deadline, the next poll
interval, the submit tries used) is :meth:`ChunkRun.carry`, read back from ``args["resume"]``.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from datetime import datetime
from typing import Any

import azure.durable_functions as df

from orchestrators.blueprint import CANCEL_EVENT
from orchestrators.clock import after, iso, parse_iso
from recobatch import errors

SUCCEEDED, FAILED, CANCELLED, TIMED_OUT, REJECTED = (
    "Succeeded", "Failed", "Cancelled", "TimedOut", "Rejected")
_CODE_OF_STATUS = {CANCELLED: errors.CANCELLED, TIMED_OUT: errors.JOB_TIMED_OUT,
                   REJECTED: errors.UPSTREAM_REJECTED}

Gen = Generator[Any, Any, Any]


def output_fields(job: dict) -> dict:
    """The results format of a job as ``verify_output`` and ``merge_results`` take it:
    ``{format, includeMetadata}``, or nothing for the default ``json`` (which keeps the
    service's results whole), so a ``json`` run's history is what it was before formats."""
    fmt = job.get("outputFormat") or "json"
    if fmt == "json":
        return {}
    return {"format": fmt, "includeMetadata": bool(job.get("includeMetadata"))}


class ChunkRun:
    """What one chunk run knows: its ids, settings, clock bounds and the cancel wait."""

    def __init__(self, context: df.DurableOrchestrationContext, args: dict) -> None:
        self.context = context
        self.args = args
        self.instance_id: str = args["instanceId"]
        self.chunk: str = args["chunk"]
        self.job: dict = args.get("job") or {}
        # A re-run's chunks live in the earlier run's work folder (see prepare_rerun).
        self.work: dict = {"workId": args["workId"]} if args.get("workId") else {}
        settings = args["settings"]
        self.poll_initial = float(settings["pollInitial"])
        self.poll_max = float(settings["pollMax"])
        resume = args.get("resume") or {}
        self.phase: str = resume.get("phase", "start")
        self.started = (parse_iso(resume["startedAt"]) if resume.get("startedAt")
                        else context.current_utc_datetime)
        self.deadline = (parse_iso(resume["deadline"]) if resume.get("deadline")
                         else after(self.started, float(settings["timeoutMinutes"]) * 60))
        self.interval = float(resume.get("interval") or self.poll_initial)
        self.unavailable = int(resume.get("unavailable") or 0)
        self.operation_id: str | None = resume.get("operationId")
        # Polls of the job so far, across executions (``check_operation`` gets the number, so
        # the polls-per-job metric is exact whichever instance sees the job end).
        self.polls = int(resume.get("polls") or 0)
        # (when, percentComplete) of the last poll, to estimate when the job ends.
        self.progress_seen: tuple[datetime, float] | None = None
        # One wait task for the whole execution: re-yielded in every race, scheduled once.
        self.cancel = context.wait_for_external_event(CANCEL_EVENT, expected_type=object)

    def carry(self, phase: str) -> dict:
        """The input of the next execution (continue-as-new): same chunk, same clock bounds."""
        resume = {"phase": phase, "operationId": self.operation_id,
                  "startedAt": iso(self.started), "deadline": iso(self.deadline),
                  "interval": self.interval, "unavailable": self.unavailable,
                  "polls": self.polls}
        return {**{k: v for k, v in self.args.items() if k != "resume"}, "resume": resume}

    def result(self, status: str, message: str = "", *, code: str | None = None,
               results: int = 0, part: dict | None = None) -> dict:
        """The chunk's outcome; ``part`` is its staged share of ``results.json`` (ids only)."""
        if code is None and status != SUCCEEDED:
            code = _CODE_OF_STATUS.get(status, errors.UPSTREAM_JOB_FAILED)
        outcome = {"chunk": self.chunk, "status": status, "code": code,
                   "operationId": self.operation_id, "message": message,
                   "startedAt": iso(self.started),
                   "endedAt": iso(self.context.current_utc_datetime), "results": results}
        if part is not None:
            outcome["part"] = part
        return outcome

    def output_fields(self) -> dict:
        """What ``verify_output`` needs of the job to stage this chunk's part: see
        :func:`output_fields`."""
        return {**output_fields(self.job), **self.work}

    def ids(self) -> dict:
        """The run's id and the chunk's name, which every activity of the chunk gets (its
        cancel flag is the run's; its span and log records carry both)."""
        return {"instanceId": self.instance_id, "chunk": self.chunk}

    def log(self, text: str) -> None:
        if not self.context.is_replaying:
            logging.info("%s:%s %s", self.instance_id, self.chunk, text)

    def wait(self, seconds: float) -> Gen:
        """Sleep on a durable timer (capped at the deadline); return True if cancel won."""
        timer = self.context.create_timer(after(self.context.current_utc_datetime, seconds,
                                                self.deadline))
        winner = yield self.context.task_any([timer, self.cancel])
        if winner is self.cancel:
            timer.cancel()
            return True
        return False

    def next_interval(self, percent: Any) -> float:
        """The wait before the next poll: the backoff, or sooner when the job's progress says
        it ends sooner (its rate since the last poll, or since its acceptance at 0 % for the
        first poll), never below ``pollInitial``.

        A job stuck short of 100 % is thus polled at most every ``pollInitial`` seconds, and a
        job that reports no progress keeps the plain backoff.
        """
        now = self.context.current_utc_datetime
        if isinstance(percent, bool) or not isinstance(percent, int | float):
            return self.interval
        seen, self.progress_seen = self.progress_seen, (now, float(percent))
        if seen is None or not seen[1] < percent < 100:
            return self.interval
        elapsed = max((now - seen[0]).total_seconds(), 0.001)
        remaining = (100 - percent) * elapsed / (percent - seen[1])
        return min(self.interval, max(remaining, self.poll_initial))

    def past_deadline(self) -> bool:
        return self.context.current_utc_datetime >= self.deadline
