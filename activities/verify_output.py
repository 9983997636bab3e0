"""Activity ``verify_output``: is a chunk's output there and fit, and stage its results part.

Input ``{instanceId, chunk, inputName, format?, includeMetadata?, workId?, stage?}``
(``stage: false``: presence only, answered ``{present, valid, staged: false}``) (``workId``: whose
work folder holds the chunk, the run's own when absent) (``format``: the job's
``outputFormat``, ``json`` when absent); output ``{present, valid, results, message, part}``:
valid means JSON ``{"results": [...]}`` with one result per request of the chunk. In the same
read, the chunk's merged records are staged, in the run's format, as uncommitted blocks of
the run's results file (:mod:`recobatch.assembly`); ``part`` (``{chunk, results, blocks, size}``)
is what ``merge_results`` commits. Staged blocks stay invisible until that commit, which only
a run that still owns the output folder makes.
"""

from __future__ import annotations

import json

from activities._payload import chunk_ref, required, results_format
from activities.blueprint import bp
from recobatch import assembly, naming, storage
from recobatch.errors import OutputInvalidError, StorageError
from recobatch.settings import get_settings

NAME = "verify_output"


def run(payload: dict) -> dict:
    """Do the work of ``verify_output`` (plain, no Functions host needed)."""
    instance, work_id, chunk = chunk_ref(payload, NAME)
    input_name = required(payload, NAME, "inputName")
    fmt, metadata = results_format(payload, NAME)
    settings = get_settings()
    service = storage.service_client(settings)
    work = service.get_container_client(settings.work_container)
    output_blob = work.get_blob_client(naming.chunk_output_blob(work_id, chunk))
    if payload.get("stage") is False:
        # Presence only: the chunk's job slot is released at once, and the batch
        # orchestrator validates and stages the output (this activity again) beside the next
        # chunk's job.
        if not storage.exists(output_blob):
            return {"present": False, "valid": False, "results": 0,
                    "message": f"{chunk}: the job's output blob is not there (yet)."}
        return {"present": True, "valid": True, "results": 0, "message": "", "staged": False}
    output = storage.open_reader_if_exists(output_blob, read_ahead=2)
    if output is None:
        return {"present": False, "valid": False, "results": 0,
                "message": f"{chunk}: the job's output blob is not there (yet)."}
    index = storage.download_bytes(work.get_blob_client(naming.chunk_index_blob(work_id,
                                                                                chunk)))
    if index is None:
        raise StorageError(f"{chunk}: the chunk's index blob is missing.")
    results = storage.ensure_container(service, settings.output_container).get_blob_client(
        naming.results_blob(input_name, fmt.name))
    try:
        with output:
            part = assembly.stage_chunk(results, assembly.run_tag(instance),
                                        naming.chunk_number(chunk), json.loads(index), output,
                                        chunk, fmt, metadata)
    except OutputInvalidError as exc:
        return {"present": True, "valid": False, "results": 0, "message": exc.message}
    return {"present": True, "valid": True, "results": part.results, "message": "",
            "part": part.as_dict()}


@bp.activity_trigger(input_name="payload")
def verify_output(payload: dict) -> dict:
    """Registered activity: calls :func:`run`."""
    return run(payload)
