"""``POST /api/batches/{id}/rerun``: run again only what did not succeed in a failed run.

The re-run (instance id :func:`recobatch.naming.rerun_id`) reads the same input blob version
with the same effective job settings (the earlier run's ``prepared.json``), reuses every chunk
the earlier ``_FAILED`` marker lists as ``Succeeded`` and submits the others; its marker says
``rerunOf`` and, per chunk, ``reused``. Answers: 202 ``{instanceId, rerunOf, started,
statusUri, cancelUri}`` (asking again while the re-run exists starts nothing: ``started``
false); 404 unknown run; 409 still running, already succeeded, input refused, output folder
now another run's, input blob changed since, or work blobs gone, each with its sentence.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from azure.core.exceptions import AzureError

from recobatch import errors, naming, storage
from recobatch.errors import StorageError
from recobatch.settings import Settings
from triggers.blueprint import bp
from triggers.http_batches import run_uri
from triggers.http_common import HttpError, instance_id_of, json_response, settings_or_error
from triggers.starting import run_input, start_once

log = logging.getLogger(__name__)
FINISHED = ("Completed", "Failed", "Terminated", "Canceled")
_REFUSED_INPUT = (errors.INVALID_INPUT, errors.INPUT_TOO_LARGE)


def _conflict(message: str) -> HttpError:
    return HttpError(409, "Conflict", message)


def _check(settings: Settings, earlier: str, run: dict) -> str:
    """The storage checks of a re-run (blocking calls); returns the work id. Raises 409s."""
    service = storage.service_client(settings)
    name, etag = run["name"], str(run.get("etag") or "")
    out = service.get_container_client(settings.output_container)
    failed = storage.download_bytes(out.get_blob_client(naming.failed_marker_blob(name)))
    marker = json.loads(failed) if failed is not None else None
    if not isinstance(marker, dict) or marker.get("instanceId") != earlier:
        success = storage.download_bytes(out.get_blob_client(naming.success_marker_blob(name)))
        marker = json.loads(success) if success is not None else marker
        owner = marker.get("instanceId") if isinstance(marker, dict) else None
        if success is not None and owner == earlier:
            raise _conflict(f"run {earlier} succeeded: there is nothing to run again.")
        raise _conflict(f"the output folder of run {earlier} holds another run's marker"
                        + (f" ({owner}: re-run that one)" if owner else "")
                        + "; only the run whose _FAILED marker is there can be re-run.")
    if marker.get("code") in _REFUSED_INPUT:
        raise _conflict(f"run {earlier} refused its input ({marker['code']}): running it again "
                        "would refuse it again; fix the file and upload it.")
    props = service.get_blob_client(run["container"], name)
    try:
        current = str(props.get_blob_properties().etag).strip('"')
    except AzureError:
        current = None
    if current != etag.strip('"'):
        raise _conflict(f"the input blob {run['container']}/{name} "
                        + ("was deleted" if current is None else "was uploaded again")
                        + f" since run {earlier}: a re-run must read the same version (a new "
                          "upload has its own run).")
    work_id = str(run.get("workId") or earlier)
    work = service.get_container_client(settings.work_container)
    if not storage.exists(work.get_blob_client(naming.prepared_blob(work_id))):
        raise _conflict(f"the work blobs of run {earlier} are gone ({settings.work_container}/"
                        f"{naming.work_prefix(work_id)}: cleaned, or the run prepared nothing, "
                        "or it ran before re-runs existed): upload the file again instead.")
    return work_id


def _input_of(status: Any) -> dict:
    value = getattr(status, "input_", None)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


async def _rerun(req: func.HttpRequest,
                 client: df.DurableOrchestrationClient) -> func.HttpResponse:
    earlier = instance_id_of(req)
    status = await client.get_status(earlier, show_input=True)
    if status.runtime_status is None:
        raise HttpError(404, "NotFound", f"no batch run with id {earlier!r}.")
    if status.runtime_status.value not in FINISHED:
        raise _conflict(f"run {earlier} is still {status.runtime_status.value}: wait for its "
                        "marker (or cancel it) before running it again.")
    run = _input_of(status)
    if not run.get("name") or not run.get("container"):
        raise _conflict(f"run {earlier} has no input on record to run again.")
    settings = settings_or_error()
    try:
        work_id = await asyncio.to_thread(_check, settings, earlier, run)
    except (AzureError, StorageError) as exc:
        log.error("storage failure while checking a re-run of %s: %s", earlier,
                  type(exc).__name__)
        raise HttpError(503, "StorageError", "storage is unavailable; retry later.") from None
    instance_id = naming.rerun_id(earlier)
    payload = run_input(run["container"], run["name"], run["etag"], run.get("size"),
                        run.get("job"), settings)
    payload.update(rerunOf=earlier, workId=work_id)
    started = await start_once(client, instance_id, payload)
    status_uri = run_uri(req, instance_id, levels_up=2)
    return json_response({"instanceId": instance_id, "rerunOf": earlier, "started": started,
                          "statusUri": status_uri, "cancelUri": f"{status_uri}/cancel"}, 202,
                         headers={"Location": status_uri, "Retry-After": "10"})


@bp.route(route="batches/{id}/rerun", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def rerun_batch(req: func.HttpRequest,
                      client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start a re-run of a failed run's unfinished chunks (202); 404 unknown; 409 when the run
    cannot be re-run (the answer says why)."""
    try:
        return await _rerun(req, client)
    except HttpError as exc:
        return exc.response()
