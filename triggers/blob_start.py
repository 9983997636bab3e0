"""Blob trigger ``start_batch_from_blob``: a requests file landed in ``BATCH_INPUT_CONTAINER``.

The function is bound to an SDK type (``azurefunctions-extensions-bindings-blob``): the host
sends the worker a reference (connection setting, container, blob name) and the worker hands
the function a :class:`azure.storage.blob.BlobClient`. The blob's content never travels to the
worker (inputs can be 512 MB); ``prepare_batch`` streams it later.

``source`` comes from ``BATCH_TRIGGER_SOURCE`` when the app is indexed: ``EventGrid`` (Flex
Consumption) or ``LogsAndContainerScan`` (polling, the default).

The run's id comes from the blob's container, name and ETag, so a repeated trigger for the same
blob version (host retries, restarts, the HTTP API having started it already) starts nothing.
"""

from __future__ import annotations

import asyncio
import logging

import azure.durable_functions as df
import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob_types
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobClient

from recobatch import naming
from recobatch.settings import get_settings, trigger_source
from triggers.blueprint import bp
from triggers.starting import run_input, start_once

log = logging.getLogger(__name__)


def blob_version(blob: BlobClient) -> tuple[str, str, str, int] | None:
    """Return ``(container, name, etag, size)`` of the blob as it is now, or ``None`` when it
    was deleted before the trigger ran.

    One ``get_blob_properties`` call; the ETag is the current version's, so a blob replaced
    since the event starts the newer version's run (which its own event starts again: same id,
    nothing new).
    """
    try:
        props = blob.get_blob_properties()
    except ResourceNotFoundError:
        return None
    return blob.container_name, blob.blob_name, str(props.etag).strip('"'), int(props.size)


@bp.blob_trigger(arg_name="blob", path="%BATCH_INPUT_CONTAINER%/{name}",
                 connection="AzureWebJobsStorage",
                 source=func.BlobSource(trigger_source()))
@bp.durable_client_input(client_name="client")
async def start_batch_from_blob(blob: blob_types.BlobClient,
                                client: df.DurableOrchestrationClient) -> None:
    """Start ``batch_orchestrator`` for this blob version unless it already runs (or ran)."""
    settings = get_settings()  # a missing setting raises ConfigurationError naming it
    # The extension's clients are synchronous: keep the worker's event loop free.
    version = await asyncio.to_thread(blob_version, blob)
    if version is None:
        # Not an error: retrying cannot bring the blob back, and a poison message would only
        # alarm. A new upload fires the trigger again.
        log.warning("blob %s/%s was deleted before its trigger ran: nothing started",
                    blob.container_name, blob.blob_name)
        return
    container, name, etag, size = version
    instance_id = naming.instance_id(container, name, etag)
    started = await start_once(client, instance_id,
                               run_input(container, name, etag, size, {}, settings))
    if not started:
        log.info("run %s for %s/%s exists already: nothing started", instance_id, container,
                 name)
