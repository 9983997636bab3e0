"""HTTP API: ``POST /api/batches`` (start a run), ``GET /api/batches/{id}`` (its progress and,
once it ended, its marker) and ``GET /api/batches`` (every run).

Inline requests are first saved to the input container as ``http/<content hash>.json`` (job
overrides as the file's top-level ``"job"``), so every run starts from a blob and the blob
trigger computes the same instance id when it sees the file: it starts nothing new. Posting the
same body twice finds the same blob version, hence the same run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import azure.durable_functions as df
import azure.functions as func
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContentSettings

from recobatch import errors, naming, storage
from recobatch.errors import InputError, StorageError
from recobatch.jobspec import JobSettings
from recobatch.limits import bounded, loads_bounded, safe_text
from recobatch.settings import Settings
from triggers.blueprint import bp
from triggers.http_common import (
    BatchRequest,
    HttpError,
    bad_request,
    custom_status_of,
    instance_id_of,
    json_response,
    parse_batch_request,
    settings_or_error,
)
from triggers.instances import ManagementError, Status, all_instances
from triggers.starting import ORCHESTRATOR, exists, run_input, start_once

log = logging.getLogger(__name__)
INLINE_PREFIX = "http/"
TERMINAL = ("Completed", "Failed", "Terminated", "Canceled")
# A marker is read only this far (a larger one is answered as too large, never parsed) and
# lists at most this many chunks in the answer (``chunksTotal`` says how many there are).
MAX_MARKER_BYTES = 1_048_576
MAX_MARKER_CHUNKS = 1000


def _storage_failed(what: str, exc: Exception) -> HttpError:
    log.error("storage failure while %s: %s", what, type(exc).__name__)
    return HttpError(503, "StorageError", f"storage is unavailable while {what}; retry later.")


def _save_inline(batch: BatchRequest, settings: Settings) -> tuple[str, str, int]:
    """Save inline requests as a seed file; return ``(name, etag, size)`` of that version."""
    document = {"requests": batch.requests}
    if batch.job:
        document["job"] = batch.job
    data = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    if len(data) > settings.max_input_bytes:
        raise HttpError(413, "InputTooLarge", f"the requests are {len(data):,} bytes, over the "
                        f"{settings.max_input_bytes:,}-byte limit (BATCH_MAX_INPUT_BYTES).")
    name = f"{INLINE_PREFIX}{hashlib.sha256(data).hexdigest()[:32]}.json"
    try:
        container = storage.ensure_container(storage.service_client(settings),
                                             settings.input_container)
        blob = container.get_blob_client(name)
        try:
            # Never overwrite: the same body keeps its blob version, hence its run.
            blob.upload_blob(data, overwrite=False,
                             content_settings=ContentSettings(content_type="application/json"))
        except ResourceExistsError:
            pass
        props = blob.get_blob_properties()
    except (AzureError, StorageError) as exc:
        raise _storage_failed("saving the requests", exc) from None
    return name, str(props.etag), int(props.size)


def _existing_blob(batch: BatchRequest, settings: Settings) -> tuple[str, str, int]:
    assert batch.blob is not None
    try:
        client = storage.service_client(settings).get_blob_client(settings.input_container,
                                                                  batch.blob)
        props = client.get_blob_properties()
    except ResourceNotFoundError:
        raise bad_request(f"input.blob: there is no blob {batch.blob!r} in the input "
                          f"container {settings.input_container}.") from None
    except (AzureError, StorageError) as exc:
        raise _storage_failed("reading the input blob", exc) from None
    return batch.blob, str(props.etag), int(props.size)


async def _start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    batch = parse_batch_request(req)
    settings = settings_or_error()
    try:
        JobSettings.from_settings(settings).with_overrides(batch.job)
    except InputError as exc:
        raise bad_request(bounded(exc.message)) from None  # may quote an outside key
    # The storage SDK blocks: its calls run on a worker thread, off the event loop.
    if batch.requests is not None:
        name, etag, size = await asyncio.to_thread(_save_inline, batch, settings)
        job: dict = {}  # the overrides travel inside the saved file
    else:
        name, etag, size = await asyncio.to_thread(_existing_blob, batch, settings)
        job = batch.job
    container = settings.input_container
    instance_id = naming.instance_id(container, name, etag)
    conflict = HttpError(409, "Conflict", f"run {instance_id} for this blob version exists "
                         "already; job overrides only apply to a new run (post the requests "
                         "inline, or upload the file with a top-level \"job\").")
    if job and await exists(client, instance_id):
        raise conflict
    started = await start_once(client, instance_id,
                               run_input(container, name, etag, size, job, settings))
    if job and not started:
        raise conflict  # another starter (the blob trigger) won the race: overrides not applied
    # Our own URLs only: the Durable check-status URLs carry the extension's system key, which
    # opens every instance of the task hub (terminate, purge, raise events) to whoever holds it.
    status_uri = run_uri(req, instance_id)
    body = {"instanceId": instance_id, "started": started, "statusUri": status_uri,
            "cancelUri": f"{status_uri}/cancel", "input": {"container": container, "name": name},
            "output": f"{settings.output_container}/{naming.output_prefix(name)}"}
    return json_response(body, 202, headers={"Location": status_uri, "Retry-After": "10"})


@bp.route(route="batches", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def start_batch(req: func.HttpRequest,
                      client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start a run for a blob in the input container or for inline requests (202)."""
    try:
        return await _start(req, client)
    except HttpError as exc:
        return exc.response()


def run_uri(req: func.HttpRequest, instance_id: str, levels_up: int = 0) -> str:
    """``<scheme>://<host>/api/batches/<id>`` from the request's own URL (its query, which may
    hold the caller's ``code``, is dropped); ``levels_up`` path segments are dropped first
    (2 from ``/api/batches/<other>/rerun``)."""
    parts = urlsplit(req.url)
    path = parts.path.rstrip("/")
    for _ in range(levels_up):
        path = path.rsplit("/", 1)[0]
    return urlunsplit((parts.scheme, parts.netloc, f"{path}/{instance_id}", "", ""))


def _iso(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


@bp.route(route="batches/{id}", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def get_batch(req: func.HttpRequest,
                    client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """A run's runtime status and progress (requests, chunks, output location); 404 unknown."""
    try:
        instance_id = instance_id_of(req)
    except HttpError as exc:
        return exc.response()
    status = await client.get_status(instance_id)
    if status.runtime_status is None:
        return HttpError(404, "NotFound", f"no batch run with id {instance_id!r}.").response()
    progress = custom_status_of(status)
    name = run_name(progress)
    marker = None
    if name is not None and status.runtime_status.value in TERMINAL:
        try:
            marker = await asyncio.to_thread(_read_marker, settings_or_error(), instance_id, name)
        except HttpError as exc:
            return exc.response()
        except (AzureError, StorageError) as exc:
            return _storage_failed("reading the run's marker", exc).response()
    return json_response({
        "instanceId": instance_id, "runtimeStatus": status.runtime_status.value,
        "createdTime": _iso(status.created_time), "lastUpdatedTime": _iso(status.last_updated_time),
        "name": name,
        "progress": {"phase": progress.get("phase"), "requests": progress.get("requests"),
                     "chunks": progress.get("chunks"),
                     "runningChunks": progress.get("runningChunks", []),
                     "output": progress.get("output")},
        "result": _result(status), "marker": marker})


def run_name(progress: dict) -> str | None:
    """The run's input blob name, from its output folder ``<container>/<name>/`` (the custom
    status names it from the start); ``None`` before the run first reported progress."""
    output = str(progress.get("output") or "")
    if "/" not in output:
        return None
    return output.split("/", 1)[1].rstrip("/") or None


def _read_marker(settings: Settings, instance_id: str, name: str) -> dict | None:
    """This run's marker in its output folder, shaped by :func:`marker_view`; ``None`` when
    there is none or the one there is another run's (a later upload or a re-run)."""
    container = storage.service_client(settings).get_container_client(settings.output_container)
    for blob_name in (naming.success_marker_blob(name), naming.failed_marker_blob(name)):
        blob = container.get_blob_client(blob_name)
        try:
            data = blob.download_blob(offset=0, length=MAX_MARKER_BYTES + 1).readall()
        except ResourceNotFoundError:
            continue
        if len(data) > MAX_MARKER_BYTES:
            return {"kind": None, "tooLarge": True, "maxBytes": MAX_MARKER_BYTES}
        try:
            doc = loads_bounded(data, blob_name)
        except InputError:
            continue
        if isinstance(doc, dict) and doc.get("instanceId") == instance_id:
            return marker_view(doc)
    return None


def _text(value: object, limit: int = 300) -> str | None:
    return safe_text(value, limit) if isinstance(value, str) else None


_NAME_CHARS = 1100  # an output blob's name: the input's (at most 1024) plus its folder's file


def marker_view(doc: dict) -> dict:
    """What the API shows of a marker: kind, code and message, counts, times, the chunks
    (name, status, operation id, duration, results; at most ``MAX_MARKER_CHUNKS``) and the
    outputs (name, size). Only these fields, each of a known type: never the job settings,
    the input's ETag or anything else a marker may grow."""
    chunks = [c for c in doc.get("chunks") or [] if isinstance(c, dict)]
    outputs = doc.get("outputs") if doc.get("kind") == "success" else doc.get("partialResults")
    counts = doc.get("counts") if isinstance(doc.get("counts"), dict) else {}
    return {
        "kind": _text(doc.get("kind")), "code": _text(doc.get("code")),
        "message": _text(doc.get("message"), 1000), "rerunOf": _text(doc.get("rerunOf")),
        "counts": {k: v for k, v in counts.items() if isinstance(v, int)},
        "startedAt": _text(doc.get("startedAt")), "endedAt": _text(doc.get("endedAt")),
        "chunksTotal": len(chunks),
        "chunks": [{"name": _text(c.get("name")), "status": _text(c.get("status")),
                    "operationId": _text(c.get("operationId")),
                    "durationSeconds": c.get("durationSeconds")
                    if isinstance(c.get("durationSeconds"), int | float) else None,
                    "results": c.get("results") if isinstance(c.get("results"), int) else None,
                    "message": _text(c.get("message")), "reused": c.get("reused") is True}
                   for c in chunks[:MAX_MARKER_CHUNKS]],
        "outputs": [{"name": _text(o.get("name"), _NAME_CHARS),
                     "size": o.get("size") if isinstance(o.get("size"), int) else None}
                    for o in outputs or [] if isinstance(o, dict)][:16]}


def _result(status: Status) -> dict | None:
    """The run's summary once done. A failed run's output is the host's failure text (the
    exception and its traceback): only its code and that code's fixed sentence are shown."""
    output = status.output
    if status.runtime_status == df.OrchestrationRuntimeStatus.Failed:
        code = errors.code_of(output if isinstance(output, str) else None)
        return {"code": code, "message": errors.summary(code)}
    # a terminated run's output is whatever reason its terminator gave: not ours to show
    return output if isinstance(output, dict) else None


@bp.route(route="batches", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def list_batches(req: func.HttpRequest,
                       client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Every run the task hub knows, newest first, with its progress (for dashboards/demo)."""
    runs = []
    try:
        statuses = [status async for status in all_instances(client)]
    except (ManagementError, aiohttp.ClientError, TimeoutError) as exc:
        log.error("cannot list the runs: %s", type(exc).__name__)
        return HttpError(503, "Unavailable", "the run list is unavailable; retry later.").response()
    for status in statuses:
        # runs only: chunk sub-orchestrations (ids "<run>:chunk-00001") are part of a run
        if status.name != ORCHESTRATOR or status.runtime_status is None:
            continue
        progress = custom_status_of(status)
        runs.append({"instanceId": status.instance_id,
                     "name": run_name(progress) or status.instance_id,
                     "runtimeStatus": status.runtime_status.value,
                     "createdTime": _iso(status.created_time),
                     "lastUpdatedTime": _iso(status.last_updated_time),
                     "customStatus": progress})
    runs.sort(key=lambda r: r["createdTime"] or "", reverse=True)
    return json_response({"runs": runs})
