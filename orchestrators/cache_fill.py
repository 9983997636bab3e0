"""The recommendations cache in ``batch_orchestrator``: which runs fill it, and the tally.

A run fills the cache when the starter passed ``settings.cacheTable`` (app setting
``BATCH_CACHE_TABLE``) and the job does not say ``"cache": false``. Each chunk calls
``fill_cache`` once its output is verified (the fan-out, beside the next chunk's job), and a
re-run's reused chunks call it after the fan-out. Only names and ids enter the history.
Its storage calls are retried by their azure-core policies (a refused transaction is written
again row by row), so the orchestrator does not call it again: a ``fill_cache`` that fails
counts the chunk's results as failed rows, and the cache never fails the run. The marker's
``cache`` is ``{table, partition, rows, failed}`` (and the first failure's ``message``).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.Task import TaskState

from activities import fill_cache
from orchestrators.failures import reason
from orchestrators.progress import Progress
from recobatch.cache import partition_key

Gen = Generator[Any, Any, Any]


def plan(args: dict, job: dict) -> dict | None:
    """``{table, partition, apiName, includeMetadata}`` when this run fills the cache."""
    table = (args.get("settings") or {}).get("cacheTable")
    if not table or job.get("cache") is False or not job.get("modelId"):
        return None
    return {"table": table, "partition": partition_key(job["modelId"], job.get("buildId")),
            "apiName": job.get("apiName") or "ItemRecommend",
            "includeMetadata": bool(job.get("includeMetadata"))}


def fill(context: df.DurableOrchestrationContext, cache: dict, chunk: str,
         work: dict) -> Any:
    """The ``fill_cache`` task of one verified chunk (``work``: ``{workId}`` or nothing)."""
    return context.call_activity(fill_cache, {
        "instanceId": context.instance_id, "chunk": chunk, **cache, **work})


def record(result: dict, task: Any) -> None:
    """Keep a finished ``fill_cache`` task's tally in the chunk's result (``cache``)."""
    found = task.result if task.state is TaskState.SUCCEEDED else None
    if isinstance(found, dict):
        result["cache"] = {"rows": int(found.get("rows") or 0),
                           "failed": int(found.get("failed") or 0),
                           "message": str(found.get("message") or "")}
        return
    _code, sentence = reason(task.result)
    result["cache"] = {"rows": 0, "failed": int(result.get("results") or 0),
                       "message": sentence}


def fill_reused(context: df.DurableOrchestrationContext, cache: dict | None, prep: dict,
                work_id: str, progress: Progress) -> Gen:
    """A re-run's reused chunks fill the cache too (their rows get this run's id)."""
    reused = [entry["chunk"] for entry in prep.get("reused") or []]
    if cache is None or not reused:
        return
    tasks = [fill(context, cache, name, {"workId": work_id}) for name in reused]
    try:
        yield context.task_all(tasks)
    except Exception:  # noqa: S110 - each task's own state is tallied below
        pass
    for name, task in zip(reused, tasks, strict=True):
        record(progress.results[name], task)


def summary(cache: dict | None, results: list[dict]) -> dict | None:
    """The marker's ``cache``: the table, the partition and the rows written (and failed)."""
    if cache is None:
        return None
    tallies = [r["cache"] for r in results if isinstance(r.get("cache"), dict)]
    body: dict[str, Any] = {"table": cache["table"], "partition": cache["partition"],
                            "rows": sum(t["rows"] for t in tallies),
                            "failed": sum(t["failed"] for t in tallies)}
    message = next((t["message"] for t in tallies if t.get("message")), "")
    if message:
        body["message"] = message
    return body
