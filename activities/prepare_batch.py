"""Activity ``prepare_batch``: validate the requests file and write the chunk inputs.

Input ``{instanceId, container, name, etag?, job?}``; output ``{inputName, etag, size,
requests, valid, rejected, chunks: [{name, requests, bytes}], job}``. The input blob is
streamed (pinned to ``etag`` when given, read ahead in parallel ranges) and never modified or
deleted. Chunk inputs, their index lists, ``rejected.jsonl`` and, last, ``prepared.json`` (this
output, for a re-run) go to the work container under ``<instanceId>/``; chunks upload in the
background while the next ones are built.
"""

from __future__ import annotations

import io
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import orjson

from activities._payload import optional, required
from activities.blueprint import bp
from recobatch import naming, storage
from recobatch.batchfile import check_size, is_jsonl
from recobatch.chunking import Chunk
from recobatch.jobspec import JobSettings
from recobatch.prepare import prepare
from recobatch.settings import get_settings

NAME = "prepare_batch"
# I/O overlaps parsing (bench/prepare_merge.py): the input is read READ_AHEAD ranges of
# READ_RANGE ahead, and up to UPLOADS_AHEAD chunks upload while the next one is built. Peak
# RSS stays under 150 MB with these (4 MiB ranges cost ~12 MB each in the SDK's copies).
READ_AHEAD = 2
READ_RANGE = 4 * 1024 * 1024
UPLOADS_AHEAD = 4


def run(payload: dict) -> dict:
    """Do the work of ``prepare_batch`` (plain, no Functions host needed)."""
    instance = required(payload, NAME, "instanceId")
    container = required(payload, NAME, "container")
    name = required(payload, NAME, "name")
    etag = optional(payload, NAME, "etag", str)
    caller_job = optional(payload, NAME, "job", dict)
    settings = get_settings()
    service = storage.service_client(settings)
    blob = service.get_blob_client(container, name)
    work = storage.ensure_container(service, settings.work_container)

    # Opened once up front for size and ETag, so an oversized file is refused unread.
    first = storage.ReadAheadBlobReader(blob, etag, READ_AHEAD, READ_RANGE)
    check_size(first.size, settings.max_input_bytes)
    readers = [first]

    def open_stream():
        raw = readers.pop() if readers else storage.ReadAheadBlobReader(
            blob, first.etag, READ_AHEAD, READ_RANGE)
        return io.BufferedReader(raw, buffer_size=64 * 1024)

    # Chunks upload in the background while the file is parsed; at most UPLOADS_AHEAD wait.
    uploads = ThreadPoolExecutor(max_workers=UPLOADS_AHEAD, thread_name_prefix="chunk-upload")
    pending: deque[Future[None]] = deque()

    def upload(chunk: Chunk) -> None:
        storage.upload_bytes(work.get_blob_client(naming.chunk_input_blob(instance, chunk.name)),
                             chunk.body, "application/json")
        storage.upload_bytes(work.get_blob_client(naming.chunk_index_blob(instance, chunk.name)),
                             orjson.dumps(chunk.indices), "application/json")

    def write_chunk(chunk: Chunk) -> None:
        while len(pending) >= UPLOADS_AHEAD:
            pending.popleft().result()
        pending.append(uploads.submit(upload, chunk))

    def open_rejected():
        return storage.BlobWriter(work.get_blob_client(naming.rejected_blob(instance)),
                                  "application/x-ndjson")

    try:
        summary = prepare(open_stream, is_jsonl(name), JobSettings.from_settings(settings),
                          caller_job, settings.max_job_bytes, write_chunk, open_rejected)
        while pending:
            pending.popleft().result()
    finally:
        uploads.shutdown(wait=True, cancel_futures=True)
    assert summary.job is not None
    prepared = {"inputName": name, "etag": first.etag, "size": first.size,
                "requests": summary.requests, "valid": summary.valid,
                "rejected": summary.rejected, "chunks": summary.chunks,
                "job": summary.job.to_dict()}
    # Kept for a re-run of this run (activity prepare_rerun), which reuses these chunks.
    storage.upload_bytes(work.get_blob_client(naming.prepared_blob(instance)),
                         orjson.dumps(prepared), "application/json")
    return prepared


@bp.activity_trigger(input_name="payload")
def prepare_batch(payload: dict) -> dict:
    """Registered activity: calls :func:`run`."""
    return run(payload)
