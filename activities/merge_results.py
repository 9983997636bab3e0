"""Activity ``merge_results``: commit the results file from staged parts, write ``errors.txt``.

Input ``{instanceId, container, inputName, etag, chunks: [{name, status, part}], format?,
includeMetadata?, workId?}`` (chunks in order; ``part`` is what ``verify_output`` staged for a
``Succeeded`` chunk; ``format`` the job's ``outputFormat``, ``json`` when absent; ``workId``
whose work folder holds the chunks, the run's own when absent: a re-run's); output
``{results: {name, size, parts}, errors: {name, size, md5}, counts: {results, errors}}``.

``results.json`` is not rewritten here: each chunk staged its records as blocks when its output
was verified (:mod:`recobatch.assembly`), so this step commits the block list in chunk order, in
seconds whatever the size. A ``Succeeded`` chunk without a staged part (or whose blocks another
writer's commit dropped) is staged here from its output. ``errors.txt`` (failed chunks' "not
scored" lines, the service's error lines, the rejected requests) is written in 4 MiB blocks.
Both are committed only while ``container/inputName`` still has ``etag``: a newer upload owns
the output folder, so a superseded run raises ``Superseded`` and leaves the folder untouched.
After the commit, a results file of another format (an earlier run's) is deleted: the folder
holds one results file, the one the marker names.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from azure.storage.blob import BlobClient, ContainerClient

from activities._payload import input_blob, optional, required, results_format
from activities.blueprint import bp
from recobatch import assembly, naming, storage
from recobatch.chunking import SUCCEEDED, ChunkOutput, merge_errors
from recobatch.errors import StorageError
from recobatch.settings import get_settings

NAME = "merge_results"


def _indices(work: ContainerClient, instance: str, chunk: str) -> list[int]:
    index = storage.download_bytes(work.get_blob_client(naming.chunk_index_blob(instance, chunk)))
    if index is None:
        raise StorageError(f"{chunk}: the chunk's index blob is missing.")
    return list(json.loads(index))


def _stage(work: ContainerClient, results: BlobClient, instance: str, work_id: str,
           chunk: str, fmt: assembly.OutputFormat, metadata: bool) -> assembly.StagedPart:
    """Stage a succeeded chunk's part from its output (when verify did not, or it was lost,
    or the chunk is reused by a re-run)."""
    output = storage.open_reader_if_exists(
        work.get_blob_client(naming.chunk_output_blob(work_id, chunk)), read_ahead=2)
    if output is None:
        raise StorageError(f"{chunk}: the job's output blob is missing.")
    with output:
        return assembly.stage_chunk(results, assembly.run_tag(instance),
                                    naming.chunk_number(chunk),
                                    _indices(work, work_id, chunk), output, chunk, fmt,
                                    metadata)


def run(payload: dict) -> dict:
    """Do the work of ``merge_results`` (plain, no Functions host needed)."""
    instance = required(payload, NAME, "instanceId")
    chunks = required(payload, NAME, "chunks", list)
    work_id = optional(payload, NAME, "workId", str) or instance
    fmt, metadata = results_format(payload, NAME)
    settings = get_settings()
    service = storage.service_client(settings)
    source, input_name, etag = input_blob(payload, NAME, service)
    work = service.get_container_client(settings.work_container)
    out = storage.ensure_container(service, settings.output_container)
    results_name = naming.results_blob(input_name, fmt.name)
    errors_name = naming.errors_blob(input_name)
    results = out.get_blob_client(results_name)
    tag = assembly.run_tag(instance)

    entries = [(naming.chunk_name(e), str(e.get("status", "")) if isinstance(e, dict)
                else SUCCEEDED, e.get("part") if isinstance(e, dict) else None) for e in chunks]
    succeeded = [(chunk, part) for chunk, status, part in entries if status == SUCCEEDED]
    parts = [assembly.StagedPart.from_dict(part) if part else
             _stage(work, results, instance, work_id, chunk, fmt, metadata)
             for chunk, part in succeeded]

    def error_outputs() -> Iterator[ChunkOutput]:
        for chunk, status, _part in entries:
            text = None
            if status == SUCCEEDED:
                error = storage.download_bytes(
                    work.get_blob_client(naming.chunk_error_blob(work_id, chunk)))
                text = error.decode("utf-8", "replace") if error is not None else None
                if not (text or "").strip():
                    continue  # nothing to say: its index blob is not needed
            yield ChunkOutput(name=chunk, indices=_indices(work, work_id, chunk),
                              status=status, error_text=text)

    def rejected() -> Iterator[tuple[int, str]]:
        rejected_blob = work.get_blob_client(naming.rejected_blob(work_id))
        if not storage.exists(rejected_blob):
            return
        with storage.open_reader(rejected_blob) as lines:
            for line in lines:
                if line.strip():
                    item = json.loads(line)
                    yield int(item["index"]), str(item["message"])

    errors_out = storage.BlobWriter(out.get_blob_client(errors_name),
                                    "text/plain; charset=utf-8")
    try:
        error_count = merge_errors(error_outputs(), rejected(), errors_out)
        # Staged blocks are invisible until committed: check just before the commit, the
        # latest moment a newer upload can still be seen.
        storage.ensure_current(source, etag)
        try:
            size = assembly.commit_results(results, tag, parts, fmt)
        except assembly.MissingBlocks:
            parts = [_stage(work, results, instance, work_id, chunk, fmt, metadata)
                     for chunk, _part in succeeded]
            storage.ensure_current(source, etag)
            size = assembly.commit_results(results, tag, parts, fmt)
    except BaseException:
        errors_out.abort()
        raise
    errors_out.close()
    for other in assembly.FORMATS:
        if other != fmt.name:  # an earlier run's results in another format are stale now
            storage.delete_if_exists(out.get_blob_client(naming.results_blob(input_name, other)))
    return {"results": {"name": results_name, "size": size, "parts": len(parts)},
            "errors": {"name": errors_name, "size": errors_out.size,
                       "md5": errors_out.md5_base64},
            "counts": {"results": sum(p.results for p in parts), "errors": error_count}}


@bp.activity_trigger(input_name="payload")
def merge_results(payload: dict) -> dict:
    """Registered activity: calls :func:`run`."""
    return run(payload)
