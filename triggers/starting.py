"""Starting a run exactly once per blob version (shared by the blob trigger and the HTTP API).

The instance id is derived from ``container/name@ETag`` (:func:`recobatch.naming.instance_id`),
so the blob trigger and ``POST /api/batches`` compute the same id for the same blob version and
a second start is refused here, not by luck.
"""

from __future__ import annotations

import logging

import azure.durable_functions as df

from recobatch.settings import Settings

ORCHESTRATOR = "batch_orchestrator"
log = logging.getLogger(__name__)


def run_input(container: str, name: str, etag: str, size: int | None, job: dict | None,
              settings: Settings) -> dict:
    """The batch orchestrator's input: where the file is, and the numbers it must not read
    from the environment itself (orchestrators are deterministic)."""
    return {"container": container, "name": name, "etag": etag, "size": size, "job": job or {},
            "settings": {"maxConcurrentJobs": settings.max_concurrent_jobs,
                         "pollInitialSeconds": settings.poll_initial_seconds,
                         "pollMaxSeconds": settings.poll_max_seconds,
                         "timeoutMinutes": settings.job_timeout_minutes,
                         "outputContainer": settings.output_container,
                         # whether to notify, not where: the URL may carry a key
                         "notify": bool(settings.notify_url),
                         # the recommendations cache's table (a name, no secret), when set
                         **({"cacheTable": settings.cache_table}
                            if settings.cache_table else {})}}


async def exists(client: df.DurableOrchestrationClient, instance_id: str) -> bool:
    """True when the task hub knows this instance (in any state)."""
    status = await client.get_status(instance_id)
    return status.runtime_status is not None


async def start_once(client: df.DurableOrchestrationClient, instance_id: str,
                     payload: dict) -> bool:
    """Start the run unless it exists; return True when this call started it.

    Two starters can race (the blob trigger fires while the HTTP API starts the same blob):
    the host refuses the second start of a running instance, and we then find it there.
    """
    if await exists(client, instance_id):
        return False
    try:
        await client.start_new(ORCHESTRATOR, instance_id, payload)
    except Exception:
        if await exists(client, instance_id):
            log.info("run %s was started concurrently by another starter", instance_id)
            return False
        raise
    log.info("started run %s for %s/%s", instance_id, payload["container"], payload["name"])
    return True
