"""Activity ``verify_output``: is a chunk's output blob there, and does it fit its input?

Input ``{instanceId, chunk}``; output ``{present, valid, results, message}``: valid means JSON
``{"results": [...]}`` with one result per request of the chunk.
"""

from __future__ import annotations

import json

from activities._payload import required
from activities.blueprint import bp
from recobatch import naming, storage
from recobatch.chunking import count_results
from recobatch.errors import OutputInvalidError, StorageError
from recobatch.settings import get_settings

NAME = "verify_output"


def run(payload: dict) -> dict:
    """Do the work of ``verify_output`` (plain, no Functions host needed)."""
    instance = required(payload, NAME, "instanceId")
    chunk = naming.chunk_name(required(payload, NAME, "chunk", (str, int, dict)))
    settings = get_settings()
    work = storage.service_client(settings).get_container_client(settings.work_container)
    output = storage.open_reader_if_exists(
        work.get_blob_client(naming.chunk_output_blob(instance, chunk)))
    if output is None:
        return {"present": False, "valid": False, "results": 0,
                "message": f"{chunk}: the job's output blob is not there (yet)."}
    index = storage.download_bytes(work.get_blob_client(naming.chunk_index_blob(instance,
                                                                                chunk)))
    if index is None:
        raise StorageError(f"{chunk}: the chunk's index blob is missing.")
    expected = len(json.loads(index))
    try:
        with output:
            results = count_results(output, expected, chunk)
    except OutputInvalidError as exc:
        return {"present": True, "valid": False, "results": 0, "message": exc.message}
    return {"present": True, "valid": True, "results": results, "message": ""}


@bp.activity_trigger(input_name="payload")
def verify_output(payload: dict) -> dict:
    """Registered activity: calls :func:`run`."""
    return run(payload)
