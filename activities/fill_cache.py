"""Activity ``fill_cache``: write a verified chunk's results into the recommendations cache.

Input ``{instanceId, chunk, table, partition, apiName, includeMetadata?, workId?}`` (names and
ids only: the rows come from the chunk's input and output blobs in the work folder of
``workId``, the run's own when absent); output ``{rows, failed, message?}``
(:class:`recobatch.cache.FillReport`). Rows that cannot be written are counted, not raised;
the activity raises only when the chunk's blobs cannot be read (the orchestrator then counts
the chunk's results as failed rows, :mod:`orchestrators.cache_fill`). See
:mod:`recobatch.cache`.
"""

from __future__ import annotations

import orjson

from activities._payload import chunk_ref, optional, required
from activities.blueprint import bp
from recobatch import cache, naming, storage
from recobatch.chunking import iter_results
from recobatch.errors import ConfigurationError, InputError, StorageError
from recobatch.settings import API_NAMES, get_settings

NAME = "fill_cache"


def run(payload: dict) -> dict:
    """Do the work of ``fill_cache`` (plain, no Functions host needed)."""
    instance, work_id, chunk = chunk_ref(payload, NAME)
    partition = required(payload, NAME, "partition")
    api_name = required(payload, NAME, "apiName")
    if api_name not in API_NAMES:
        raise InputError(f"{NAME}: the payload field apiName is invalid.")
    try:
        table_name = cache.check_table_name(required(payload, NAME, "table"))
    except ConfigurationError:
        raise InputError(f"{NAME}: the payload field table is invalid.") from None
    metadata = bool(optional(payload, NAME, "includeMetadata", bool))
    settings = get_settings()
    work = storage.service_client(settings).get_container_client(settings.work_container)
    source = storage.download_bytes(work.get_blob_client(naming.chunk_input_blob(work_id,
                                                                                 chunk)))
    if source is None:
        raise StorageError(f"{chunk}: the chunk's input blob is missing.")
    requests = orjson.loads(source).get("requests") or []
    output = storage.open_reader_if_exists(
        work.get_blob_client(naming.chunk_output_blob(work_id, chunk)), read_ahead=2)
    if output is None:
        raise StorageError(f"{chunk}: the job's output blob is missing.")
    table = cache.table_client(cache.table_service(settings), table_name, create=True)
    with output:
        report = cache.fill(table, requests, iter_results(output, len(requests), chunk),
                            partition=partition, api_name=api_name, instance_id=instance,
                            metadata=metadata)
    return report.as_dict()


@bp.activity_trigger(input_name="payload")
def fill_cache(payload: dict) -> dict:
    """Registered activity: calls :func:`run`."""
    return run(payload)
