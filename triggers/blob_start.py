"""Blob trigger ``start_batch_from_blob``: a requests file landed in ``BATCH_INPUT_CONTAINER``.

The run's id comes from the blob's container, name and ETag, so a repeated trigger for the same
blob version (host retries, restarts, the HTTP API having started it already) starts nothing.
"""

from __future__ import annotations

import asyncio
import logging

import azure.durable_functions as df
import azure.functions as func

from recobatch import naming, storage
from recobatch.settings import Settings, get_settings
from triggers.blueprint import bp
from triggers.starting import run_input, start_once

log = logging.getLogger(__name__)


def blob_version(blob: func.InputStream, settings: Settings) -> tuple[str, str, str, int | None]:
    """Return ``(container, name, etag, size)`` of the triggering blob.

    The worker passes the blob's properties (``ETag``, ``ContentLength``) in the trigger
    metadata; when a host leaves them out we ask storage for them.
    """
    container, _, name = (blob.name or "").partition("/")
    if not container or not name:
        raise ValueError(f"the blob trigger gave no container/name: {blob.name!r}")
    props = blob.blob_properties or {}
    etag = props.get("ETag") or props.get("Etag")
    size = blob.length if blob.length is not None else props.get("ContentLength")
    if not etag:
        client = storage.service_client(settings).get_blob_client(container, name)
        found = client.get_blob_properties()
        etag, size = found.etag, found.size
    return container, name, str(etag), size


@bp.blob_trigger(arg_name="blob", path="%BATCH_INPUT_CONTAINER%/{name}",
                 connection="AzureWebJobsStorage")
@bp.durable_client_input(client_name="client")
async def start_batch_from_blob(blob: func.InputStream,
                                client: df.DurableOrchestrationClient) -> None:
    """Start ``batch_orchestrator`` for this blob version unless it already runs (or ran)."""
    settings = get_settings()  # a missing setting raises ConfigurationError naming it
    # may ask storage (blocking SDK call): off the worker's event loop
    container, name, etag, size = await asyncio.to_thread(blob_version, blob, settings)
    instance_id = naming.instance_id(container, name, etag)
    started = await start_once(client, instance_id,
                               run_input(container, name, etag, size, {}, settings))
    if not started:
        log.info("run %s for %s/%s exists already: nothing started", instance_id, container,
                 name)
