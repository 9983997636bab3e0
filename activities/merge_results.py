"""Activity ``merge_results``: merge chunk outputs into ``results.json`` and ``errors.txt``.

Input ``{instanceId, container, inputName, etag, chunks: [{name, status}]}`` (chunks in order;
only ``Succeeded`` ones contribute results, the others give "not scored" error lines); output
``{results: {name, size, md5}, errors: {name, size, md5}, counts: {results, errors}}``.
Both blobs are written in 4 MiB blocks; one chunk output is in memory at a time. The blocks
are committed only while ``container/inputName`` still has ``etag``: a newer upload owns the
output folder, so a superseded run raises ``Superseded`` and leaves the folder untouched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from activities._payload import input_blob, required
from activities.blueprint import bp
from recobatch import naming, storage
from recobatch.chunking import ChunkOutput, merge_outputs
from recobatch.errors import StorageError
from recobatch.settings import get_settings

NAME = "merge_results"


def run(payload: dict) -> dict:
    """Do the work of ``merge_results`` (plain, no Functions host needed)."""
    instance = required(payload, NAME, "instanceId")
    chunks = required(payload, NAME, "chunks", list)
    settings = get_settings()
    service = storage.service_client(settings)
    source, input_name, etag = input_blob(payload, NAME, service)
    work = service.get_container_client(settings.work_container)
    out = storage.ensure_container(service, settings.output_container)

    def blob(name: str) -> bytes | None:
        return storage.download_bytes(work.get_blob_client(name))

    def outputs() -> Iterator[ChunkOutput]:
        for entry in chunks:
            chunk = naming.chunk_name(entry)
            status = str(entry.get("status", "")) if isinstance(entry, dict) else "Succeeded"
            index = blob(naming.chunk_index_blob(instance, chunk))
            if index is None:
                raise StorageError(f"{chunk}: the chunk's index blob is missing.")
            succeeded = status == "Succeeded"
            error = blob(naming.chunk_error_blob(instance, chunk)) if succeeded else None
            item = ChunkOutput(
                name=chunk, indices=json.loads(index), status=status,
                output=storage.open_reader_if_exists(work.get_blob_client(
                    naming.chunk_output_blob(instance, chunk))) if succeeded else None,
                error_text=error.decode("utf-8", "replace") if error is not None else None)
            try:
                yield item
            finally:
                if item.output is not None and not isinstance(item.output, bytes):
                    item.output.close()

    def rejected() -> Iterator[tuple[int, str]]:
        rejected_blob = work.get_blob_client(naming.rejected_blob(instance))
        if not storage.exists(rejected_blob):
            return
        with storage.open_reader(rejected_blob) as lines:
            for line in lines:
                if line.strip():
                    item = json.loads(line)
                    yield int(item["index"]), str(item["message"])

    results_name = naming.results_blob(input_name)
    errors_name = naming.errors_blob(input_name)
    results_out = storage.BlobWriter(out.get_blob_client(results_name), "application/json")
    errors_out = storage.BlobWriter(out.get_blob_client(errors_name),
                                    "text/plain; charset=utf-8")
    try:
        counts = merge_outputs(outputs(), rejected(), results_out, errors_out)
        # Staged blocks are invisible until committed: check just before the commit, the
        # latest moment a newer upload can still be seen.
        storage.ensure_current(source, etag)
    except BaseException:
        results_out.abort()
        errors_out.abort()
        raise
    results_out.close()
    errors_out.close()
    return {"results": {"name": results_name, "size": results_out.size,
                        "md5": results_out.md5_base64},
            "errors": {"name": errors_name, "size": errors_out.size,
                       "md5": errors_out.md5_base64},
            "counts": {"results": counts.results, "errors": counts.errors}}


@bp.activity_trigger(input_name="payload")
def merge_results(payload: dict) -> dict:
    """Registered activity: calls :func:`run`."""
    return run(payload)
