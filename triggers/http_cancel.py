"""HTTP API ``POST /api/batches/{id}/cancel``: stop a run, keeping what finished.

Order matters: the ``_CANCEL`` flag is written first, then the run's custom status is read, then
``cancel`` is raised to the run and to each chunk listed there. A chunk that checked the flag
before it was written was scheduled before that read, so it is in the list (unless it already
ended); a chunk that starts later finds the flag before submitting. No chunk slips through.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from azure.core.exceptions import AzureError

from orchestrators.blueprint import CANCEL_EVENT
from recobatch import naming, storage
from recobatch.errors import StorageError
from recobatch.settings import Settings
from triggers.blueprint import bp
from triggers.http_common import (
    HttpError,
    custom_status_of,
    instance_id_of,
    json_response,
    settings_or_error,
)

log = logging.getLogger(__name__)
FINISHED = ("Completed", "Failed", "Terminated", "Canceled")


def _finished(status: Any) -> bool:
    return status.runtime_status is not None and status.runtime_status.value in FINISHED


def _already_finished(instance_id: str, status: Any) -> HttpError:
    return HttpError(409, "Conflict", f"run {instance_id} has already finished "
                     f"({status.runtime_status.value}).")


def _write_flag(settings: Settings, instance_id: str) -> None:
    work = storage.ensure_container(storage.service_client(settings), settings.work_container)
    storage.upload_bytes(work.get_blob_client(naming.cancel_blob(instance_id)),
                         datetime.now(UTC).isoformat().encode(), "text/plain")


async def _cancel(req: func.HttpRequest,
                  client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = instance_id_of(req)
    status = await client.get_status(instance_id)
    if status.runtime_status is None:
        raise HttpError(404, "NotFound", f"no batch run with id {instance_id!r}.")
    if _finished(status):
        raise _already_finished(instance_id, status)
    settings = settings_or_error()
    try:
        # storage calls block: off the worker's event loop
        await asyncio.to_thread(_write_flag, settings, instance_id)
    except (AzureError, StorageError) as exc:
        log.error("cannot write the cancel flag of %s: %s", instance_id, type(exc).__name__)
        raise HttpError(503, "StorageError", "storage is unavailable; retry later.") from None
    # Read the running chunks only now: a chunk started since the first read missed the flag.
    status = await client.get_status(instance_id)
    if _finished(status):
        raise _already_finished(instance_id, status)  # it completed while we wrote the flag
    progress = custom_status_of(status)
    try:
        await client.raise_event(instance_id, CANCEL_EVENT, None)
    except Exception as exc:  # the SDK raises plain Exception (410 gone, 404, 5xx)
        status = await client.get_status(instance_id)
        if _finished(status):
            raise _already_finished(instance_id, status) from None
        log.error("cancel not delivered to %s: %s", instance_id, type(exc).__name__)
        raise HttpError(503, "Unavailable", "the cancel could not be delivered; retry "
                        "later.") from None
    signalled = []
    for child in progress.get("runningChunks") or []:
        try:
            await client.raise_event(child, CANCEL_EVENT, None)
            signalled.append(child)
        except Exception as exc:  # the chunk may have just finished: nothing left to stop
            log.info("cancel not delivered to %s: %s", child, exc)
    log.info("cancel requested for %s (%d running chunks signalled)", instance_id,
             len(signalled))
    return json_response({"instanceId": instance_id, "cancelRequested": True,
                          "chunksSignalled": signalled}, 202)


@bp.route(route="batches/{id}/cancel", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def cancel_batch(req: func.HttpRequest,
                       client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Cancel a running run (202); 404 when unknown, 409 when it has already finished (also
    when it finishes while the cancel is being delivered)."""
    try:
        return await _cancel(req, client)
    except HttpError as exc:
        return exc.response()
