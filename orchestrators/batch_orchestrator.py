"""Orchestration ``batch_orchestrator``: one requests file, from prepare to the completion marker.

Input ``{container, name, etag, size, job, settings: {maxConcurrentJobs, pollInitialSeconds,
pollMaxSeconds, timeoutMinutes, outputContainer, notify}}`` (the starter reads the app settings,
so this generator never touches the environment). Steps: ``prepare_batch`` → one
``chunk_orchestrator`` per chunk, at most ``maxConcurrentJobs`` in flight, raced against the
``cancel`` event → ``merge_results`` (partial results too) → ``write_marker`` last → with
``notify``, the completion event (:mod:`orchestrators.notification`). Returns a small summary.
With ``settings.cacheTable``, each verified chunk also fills the recommendations cache
(:mod:`orchestrators.cache_fill`) and the marker says how many rows it wrote.

``merge_results`` and ``write_marker`` failing with ``StorageError`` (storage 5xx, timeouts) are
tried again on durable timers (:data:`OUTPUT_RETRY_SECONDS`) before the run fails; other codes
(``Superseded``, a refused payload, a bug) are not: retrying cannot change them. Durable timers
rather than ``RetryOptions``, which would retry every failure alike.

The output folder is named after the input blob, so a newer upload of the same blob (its own
run) owns it: ``merge_results`` and ``write_marker`` check the input's ETag and raise
``Superseded`` for a replaced or deleted blob; the run then writes nothing more and completes
with status ``Superseded`` (not a failure of its own work).
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from datetime import datetime
from typing import Any

import azure.durable_functions as df

from activities import merge_results, prepare_batch, prepare_rerun, verify_output, write_marker
from orchestrators import cache_fill
from orchestrators.blueprint import bp
from orchestrators.chunk_run import output_fields
from orchestrators.clock import after, iso
from orchestrators.failures import reason
from orchestrators.fan_out import fan_out
from orchestrators.notification import enabled, notify
from orchestrators.progress import Progress, failing_chunks, run_code, run_message
from recobatch import errors, markers, naming

Gen = Generator[Any, Any, Any]
_INPUT_CODES = (errors.INVALID_INPUT, errors.INPUT_TOO_LARGE)
# Waits before each new try of an output activity that failed with StorageError (about 3 min).
OUTPUT_RETRY_SECONDS = (5, 15, 45, 120)


def _log(context: df.DurableOrchestrationContext, text: str) -> None:
    if not context.is_replaying:
        logging.info("%s %s", context.instance_id, text)


def _input_version(args: dict) -> dict:
    """Which input blob version the run belongs to (output activities refuse a stale one)."""
    return {"container": args["container"], "inputName": args["name"], "etag": args.get("etag")}


def _output_call(context: df.DurableOrchestrationContext, activity: Any, payload: dict) -> Gen:
    """Call an output activity; a ``StorageError`` is tried again after a durable timer."""
    for delay in (*OUTPUT_RETRY_SECONDS, None):
        try:
            return (yield context.call_activity(activity, payload))
        except Exception as exc:
            if delay is None or errors.code_of(exc) != errors.STORAGE_ERROR:
                raise
            _log(context, f"storage failed, trying again in {delay}s")
            yield context.create_timer(after(context.current_utc_datetime, delay))
    return None  # not reached: the last failure is raised


def _write(context: df.DurableOrchestrationContext, args: dict, document: dict) -> Gen:
    """Write the marker (``write_marker``) with a document from :mod:`recobatch.markers`."""
    return (yield from _output_call(context, write_marker, {
        "kind": document["kind"], **_input_version(args), "marker": document}))


def _notified(context: df.DurableOrchestrationContext, args: dict, written: Any) -> Gen:
    """After the marker: the completion event when configured; its record, else ``None``."""
    if not enabled(args) or not isinstance(written, dict) or not written.get("name"):
        return None
    return (yield from notify(context, written["name"]))


def _summary(summary: dict, notification: dict | None) -> dict:
    if notification is not None:
        summary["notification"] = notification
    return summary


def _superseded(context: df.DurableOrchestrationContext, progress: Progress,
                sentence: str) -> dict:
    """Complete without writing: a newer upload of the same blob owns the output folder."""
    _log(context, f"superseded by a newer upload, nothing written: {sentence}")
    progress.phase = "superseded"
    status = progress.status()
    status["message"] = "superseded by a newer upload of the same blob; nothing was written."
    context.set_custom_status(status)
    return {"instanceId": context.instance_id, "status": "Superseded",
            "code": errors.SUPERSEDED, "message": sentence, "requests": progress.requests,
            "chunks": status["chunks"], "output": progress.output}


def _failed(context: df.DurableOrchestrationContext, args: dict, started: datetime, code: str,
            message: str, **fields: Any) -> dict:
    return markers.failed_marker(
        instance_id=context.instance_id, input_name=args["name"], code=code, message=message,
        started_at=iso(started), ended_at=iso(context.current_utc_datetime),
        etag=args.get("etag"), size=args.get("size"), container=args["container"], **fields)


def _merge_entry(result: dict) -> dict:
    """What ``merge_results`` needs of a chunk: name, status and its staged part (ids only)."""
    entry = {"name": result["chunk"], "status": result["status"]}
    if result.get("part"):
        entry["part"] = result["part"]
    return entry


def _stage_reused(context: df.DurableOrchestrationContext, args: dict, prep: dict,
                  progress: Progress) -> Gen:
    """A re-run's reused chunks stage their parts for this run, all at once (``verify_output``
    on the earlier output), rather than one by one in ``merge_results``. A chunk whose staging
    failed is left without a part: the merge stages it, or fails with its reason."""
    reused = [entry["chunk"] for entry in prep.get("reused") or []]
    if not reused:
        return
    work = {"workId": _work_id(context, args), **output_fields(prep.get("job") or {})}
    tasks = [context.call_activity(verify_output, {
        "instanceId": context.instance_id, "chunk": name, "inputName": args["name"], **work})
        for name in reused]
    try:
        found = yield context.task_all(tasks)
    except Exception as exc:
        _log(context, f"staging reused chunks failed ({errors.code_of(exc)}): the merge will")
        return
    for name, answer in zip(reused, found, strict=True):
        if answer.get("valid") and answer.get("part"):
            progress.results[name]["part"] = answer["part"]


def _work_id(context: df.DurableOrchestrationContext, args: dict) -> str:
    """Whose work folder holds the run's chunks: a re-run's is its chain's first run."""
    return str(args.get("workId") or context.instance_id)


def _prepare_input(context: df.DurableOrchestrationContext, args: dict) -> dict:
    """Pin prepare to the blob version that started the run; pass the caller's job overrides."""
    payload = {"instanceId": context.instance_id, "container": args["container"],
               "name": args["name"]}
    if args.get("etag"):
        payload["etag"] = args["etag"]
    if args.get("job"):
        payload["job"] = args["job"]
    return payload


def _run(context: df.DurableOrchestrationContext, args: dict, progress: Progress,
         started: datetime) -> Gen:
    context.set_custom_status(progress.status())
    try:
        if args.get("rerunOf"):
            prep = yield context.call_activity(prepare_rerun, {
                "instanceId": context.instance_id, "rerunOf": args["rerunOf"],
                "workId": _work_id(context, args), **_input_version(args)})
        else:
            prep = yield context.call_activity(prepare_batch, _prepare_input(context, args))
    except Exception as exc:
        code, sentence = reason(exc)
        if code not in _INPUT_CODES:
            raise
        _log(context, f"input refused: {code}")
        progress.phase = "failed"
        context.set_custom_status(progress.status())
        written = yield from _write(context, args,
                                    _failed(context, args, started, code, sentence))
        sent = yield from _notified(context, args, written)
        return _summary({"instanceId": context.instance_id, "status": "Failed", "code": code,
                         "output": progress.output}, sent)
    progress.requests = int(prep.get("requests") or 0)
    progress.total = len(prep["chunks"])
    progress.phase = "running"
    cancelled = yield from fan_out(context, args, prep, progress)

    progress.phase = "merging"
    context.set_custom_status(progress.status())
    yield from _stage_reused(context, args, prep, progress)
    cache = cache_fill.plan(args, prep.get("job") or {})
    yield from cache_fill.fill_reused(context, cache, prep, _work_id(context, args), progress)
    ordered = [progress.results[c["name"]] for c in prep["chunks"]]
    merged = yield from _output_call(context, merge_results, {
        "instanceId": context.instance_id, **_input_version(args),
        "chunks": [_merge_entry(r) for r in ordered], **output_fields(prep.get("job") or {}),
        **({"workId": _work_id(context, args)} if args.get("rerunOf") else {})})

    code = run_code(ordered, cancelled)
    counts = {"requests": progress.requests, "valid": prep.get("valid"),
              "rejected": prep.get("rejected"), **(merged.get("counts") or {})}
    outputs = [merged[key] for key in ("results", "errors") if merged.get(key)]
    if code is None:
        document = markers.success_marker(
            instance_id=context.instance_id, input_name=args["name"], etag=args.get("etag"),
            size=args.get("size"), job=prep.get("job") or {}, counts=counts, chunks=ordered,
            outputs=outputs, started_at=iso(started),
            ended_at=iso(context.current_utc_datetime), container=args["container"])
    else:
        message = run_message(code, failing_chunks(ordered), progress.total)
        document = _failed(context, args, started, code, message, chunks=ordered,
                           outputs=outputs, counts=counts)
    if args.get("rerunOf"):
        document["rerunOf"] = args["rerunOf"]
    cached = cache_fill.summary(cache, ordered)
    if cached is not None:
        document["cache"] = cached
    written = yield from _write(context, args, document)
    progress.phase = "completed" if code is None else "failed"
    context.set_custom_status(progress.status())
    _log(context, f"ended {code or 'Succeeded'}")
    sent = yield from _notified(context, args, written)
    return _summary({"instanceId": context.instance_id, "status": "Failed" if code else
                     "Succeeded", "code": code, "requests": progress.requests,
                     "chunks": progress.status()["chunks"], "output": progress.output}, sent)


@bp.orchestration_trigger(context_name="context", input_type=dict)
def batch_orchestrator(context: df.DurableOrchestrationContext) -> Gen:
    """Run one requests file end to end (see the module docstring)."""
    args = context.get_input()
    output_container = args["settings"].get("outputContainer", "batch-output")
    progress = Progress(output=f"{output_container}/{naming.output_prefix(args['name'])}")
    started = context.current_utc_datetime
    try:
        return (yield from _run(context, args, progress, started))
    except Exception as exc:
        code, sentence = reason(exc)
        if code == errors.SUPERSEDED:
            return _superseded(context, progress, sentence)
        # Whatever broke, leave a _FAILED marker so nobody waits on a run that is gone.
        _log(context, f"failed unexpectedly: {code}")
        progress.phase = "failed"
        context.set_custom_status(progress.status())
        try:
            written = yield from _write(context, args,
                                        _failed(context, args, started, code, sentence))
            yield from _notified(context, args, written)
        except Exception:
            _log(context, "could not write the _FAILED marker")
        raise
