"""Activity ``prepare_rerun``: what a re-run of a failed run reuses, instead of ``prepare_batch``.

Input ``{instanceId, rerunOf, workId, container, inputName, etag}`` (``rerunOf``: the failed
run; ``workId``: the run whose work folder holds the chunks, the first run of the chain);
output ``prepare_batch``'s output as that run's ``prepared.json`` kept it (chunks, counts,
effective job: the re-run scores with the same settings), plus ``reused: [{chunk, operationId,
startedAt, endedAt, results}]``, the chunks the earlier run's ``_FAILED`` marker lists as
``Succeeded`` whose verified output is still in the work folder. Those are not submitted again;
every other chunk (failed, cancelled, timed out, never started) is.

Raises ``Superseded`` when the input blob no longer has ``etag`` (the re-run must read the same
version), and ``StorageError`` when the work folder has no ``prepared.json`` (the run prepared
nothing, or ``batch-work`` was cleaned). When the earlier marker is not that run's any more,
nothing is reused: every chunk runs again, which gives the same results.
"""

from __future__ import annotations

import json

from activities._payload import input_blob, required
from activities.blueprint import bp
from recobatch import naming, storage
from recobatch.errors import StorageError
from recobatch.settings import get_settings

NAME = "prepare_rerun"
_KEEP = ("operationId", "startedAt", "endedAt", "results")


def run(payload: dict) -> dict:
    """Do the work of ``prepare_rerun`` (plain, no Functions host needed)."""
    earlier = required(payload, NAME, "rerunOf")
    work_id = required(payload, NAME, "workId")
    settings = get_settings()
    service = storage.service_client(settings)
    source, input_name, etag = input_blob(payload, NAME, service)
    storage.ensure_current(source, etag)
    work = service.get_container_client(settings.work_container)
    prepared_raw = storage.download_bytes(work.get_blob_client(naming.prepared_blob(work_id)))
    if prepared_raw is None:
        raise StorageError(f"run {earlier} left no prepared chunks in {settings.work_container}"
                           f"/{naming.work_prefix(work_id)} (it failed before they were "
                           "written, or the folder was cleaned).")
    prepared = json.loads(prepared_raw)
    out = service.get_container_client(settings.output_container)
    marker_raw = storage.download_bytes(out.get_blob_client(
        naming.failed_marker_blob(input_name)))
    marker = json.loads(marker_raw) if marker_raw is not None else {}
    chunk_names = {c["name"] for c in prepared["chunks"]}
    reused = []
    if isinstance(marker, dict) and marker.get("instanceId") == earlier:
        for entry in marker.get("chunks") or []:
            name = entry.get("name")
            if entry.get("status") != "Succeeded" or name not in chunk_names:
                continue
            if storage.exists(work.get_blob_client(naming.chunk_output_blob(work_id, name))):
                reused.append({"chunk": name, **{k: entry.get(k) for k in _KEEP}})
    return {**prepared, "reused": reused}


@bp.activity_trigger(input_name="payload")
def prepare_rerun(payload: dict) -> dict:
    """Registered activity: calls :func:`run`."""
    return run(payload)
