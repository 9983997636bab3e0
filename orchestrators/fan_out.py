"""The fan-out of ``batch_orchestrator``: every chunk as a sub-orchestration, N at a time.

The window is refilled with ``task_any`` over the running chunks and the ``cancel`` event; once
cancelled, no chunk starts and the running ones (told by the HTTP cancel) are awaited. With
the recommendations cache on, a chunk's ``fill_cache`` starts once its output is verified and is
awaited like the staging, outside the window (:mod:`orchestrators.cache_fill`).

A refill hands its new chunks to the host in a race with a timer due now, before the race over
all running chunks. The Durable extension awaits each action the SDK returns in turn
(``OutOfProcOrchestrationShim.ProcessAsyncActionsV2``), and the SDK's ``WhenAny`` for a
``task_any`` lists only the tasks not yielded before: a race of old and new chunks would reach
the extension as a wait for the new ones alone, so an older chunk finishing first would start
nothing until the new one finished too (the window would shrink to one).
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.Task import TaskState

from activities import verify_output
from orchestrators import cache_fill
from orchestrators.blueprint import CANCEL_EVENT
from orchestrators.chunk_orchestrator import chunk_orchestrator
from orchestrators.chunk_run import output_fields
from orchestrators.failures import reason
from orchestrators.progress import Progress
from recobatch import errors, naming

Gen = Generator[Any, Any, Any]


def fan_out(context: df.DurableOrchestrationContext, args: dict, prep: dict,
            progress: Progress) -> Gen:
    """Run every chunk, at most N at a time; return True if the run was cancelled.

    A re-run (``prep["reused"]``) starts no chunk for the ones the earlier run verified: their
    results are the earlier ones, marked ``reused``; the others run with ``workId``, and are
    marked ``reused: false``.
    """
    settings = args["settings"]
    window = max(1, int(settings["maxConcurrentJobs"]))
    chunk_settings = {"pollInitial": settings["pollInitialSeconds"],
                      "pollMax": settings["pollMaxSeconds"],
                      "timeoutMinutes": settings["timeoutMinutes"]}
    rerun = "reused" in prep
    for entry in prep.get("reused") or []:
        progress.results[entry["chunk"]] = {**entry, "status": "Succeeded", "code": None,
                                            "message": "", "reused": True}
    queue = [chunk["name"] for chunk in prep["chunks"] if chunk["name"] not in progress.results]
    work = {"workId": args["workId"]} if rerun and args.get("workId") else {}
    cancel = context.wait_for_external_event(CANCEL_EVENT, expected_type=object)
    running: dict[Any, str] = {}  # task -> chunk name
    staging: dict[Any, str] = {}  # verify_output task -> chunk name (outside the window)
    cache = cache_fill.plan(args, prep.get("job") or {})
    filling: dict[Any, str] = {}  # fill_cache task -> chunk name (outside the window)
    started: list = []  # tasks made since the last race, handed over to the host first
    cancelled = False
    while queue or running or staging or filling:
        while queue and len(running) < window and not cancelled:
            name = queue.pop(0)
            child_id = naming.chunk_orchestration_id(context.instance_id, name)
            task = context.call_sub_orchestrator(
                chunk_orchestrator, {"instanceId": context.instance_id, "chunk": name,
                                     "inputName": args["name"], "job": prep.get("job") or {},
                                     "settings": chunk_settings, "stage": False, **work},
                child_id, expected_type=dict)  # the handle's own annotation says str
            running[task] = name
            started.append(task)
            progress.running[name] = child_id
        context.set_custom_status(progress.status())
        pending = list(running) + list(staging) + list(filling)
        if not pending:
            break
        if started and len(started) < len(pending):
            yield from _hand_over(context, started)
        started = []
        winner = yield context.task_any(pending + ([] if cancelled else [cancel]))
        if winner is cancel:
            if not context.is_replaying:
                logging.info("%s cancel requested", context.instance_id)
            cancelled = True
            progress.phase = "cancelling"
        for task in [t for t in running if t.is_completed]:
            name = running.pop(task)
            progress.running.pop(name)
            result = progress.results[name] = _chunk_result(task, name)
            if rerun:
                result["reused"] = False
            if result.get("status") == "Succeeded" and result.pop("staged", None) is False:
                # The job slot is free: the next chunk's job runs while this one's output is
                # validated and staged as its part of the results.
                stage = context.call_activity(verify_output, {
                    "instanceId": context.instance_id, "chunk": name, "inputName": args["name"],
                    **output_fields(prep.get("job") or {}), **work})
                staging[stage] = name
                started.append(stage)
            elif cache is not None and result.get("status") == "Succeeded":
                _fill(context, cache, name, work, filling, started)  # staged by its chunk
        for task in [t for t in staging if t.is_completed]:
            name = staging.pop(task)
            result = progress.results[name] = _staged(progress.results[name], task)
            if cache is not None and result.get("part"):
                # The cache fills from the verified output while the next chunks run.
                _fill(context, cache, name, work, filling, started)
        for task in [t for t in filling if t.is_completed]:
            cache_fill.record(progress.results[filling.pop(task)], task)
    for name in queue:  # never started because of the cancel
        progress.results[name] = {"chunk": name, "status": "Cancelled", "code": errors.CANCELLED,
                                  "operationId": None, "message": "not started: run cancelled.",
                                  **({"reused": False} if rerun else {})}
    return cancelled


def _fill(context: df.DurableOrchestrationContext, cache: dict, name: str, work: dict,
          filling: dict, started: list) -> None:
    task = cache_fill.fill(context, cache, name, work)
    filling[task] = name
    started.append(task)


def _hand_over(context: df.DurableOrchestrationContext, started: list) -> Gen:
    """Schedule new chunks in an action the extension finishes at once (a timer due now)."""
    now = context.create_timer(context.current_utc_datetime)
    yield context.task_any([*started, now])
    if not now.is_completed:
        now.cancel()


def _staged(result: dict, task: Any) -> dict:
    """A chunk's result once its output was validated and staged (or found unfit)."""
    found = task.result if task.state is TaskState.SUCCEEDED else None
    if isinstance(found, dict) and found.get("valid"):
        return {**result, "results": int(found.get("results") or 0), "part": found.get("part")}
    if isinstance(found, dict):
        return {**result, "status": "Failed", "code": errors.OUTPUT_INVALID,
                "message": found.get("message") or "the output is not valid."}
    code, sentence = reason(task.result)
    return {**result, "status": "Failed", "code": code, "message": sentence}


def _chunk_result(task: Any, name: str) -> dict:
    """A finished chunk's result; a crashed sub-orchestration counts as Failed with its code."""
    if task.state is TaskState.SUCCEEDED and isinstance(task.result, dict):
        return task.result
    code, sentence = reason(task.result)
    return {"chunk": name, "status": "Failed", "code": code, "operationId": None,
            "message": sentence}
