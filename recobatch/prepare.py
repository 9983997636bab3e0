"""Prepare a run: stream a requests file, validate, split into chunks (no storage here).

The caller supplies where chunks and rejections go (callbacks), so the same code runs in the
``prepare_batch`` activity, in tests and in the benchmark. Memory holds one chunk at a time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from recobatch.batchfile import BatchFile, read_job, validate_request, why_no_requests
from recobatch.chunking import Chunk, encode_request, max_request_bytes, split_requests
from recobatch.errors import InputError
from recobatch.jobspec import JobSettings


@dataclass
class PrepareSummary:
    """What prepare found: counts, chunks written, the effective job settings."""

    requests: int = 0
    valid: int = 0
    rejected: int = 0
    chunks: list[dict[str, Any]] = field(default_factory=list)
    job: JobSettings | None = None
    first_rejection: str | None = None


def prepare(open_stream: Callable[[], IO[bytes]], jsonl: bool, base_job: JobSettings,
            caller_job: Mapping[str, Any] | None, max_job_bytes: int,
            write_chunk: Callable[[Chunk], None],
            open_rejected: Callable[[], IO[bytes]]) -> PrepareSummary:
    """Stream, validate and split a requests file.

    Job settings: app settings, then the file's ``"job"``, then ``caller_job`` (the caller's
    explicit choice wins). A seed JSON file is read twice: first for its ``"job"`` (and to
    find invalid JSON before any chunk is written), then for its requests.

    Parameters
    ----------
    open_stream : callable
        Opens the file from its start (called once, or twice as above).
    write_chunk : callable
        Stores one :class:`Chunk` (its body and its indices).
    open_rejected : callable
        Opens (from empty) the writer of ``rejected.jsonl`` (``{"index", "message"}`` lines);
        closed by prepare.

    Raises
    ------
    InputError
        Invalid JSON, wrong shape, a bad ``job``, or no valid request.
    """
    file_job = None
    if not jsonl:
        stream = open_stream()
        try:
            file_job = read_job(stream)
        finally:
            stream.close()
    job = base_job.with_overrides(file_job).with_overrides(caller_job)
    summary = PrepareSummary(job=job)
    stream = open_stream()
    rejected = open_rejected()
    limit = max_request_bytes(max_job_bytes)

    def valid() -> Iterator[tuple[int, bytes]]:
        for index, request in BatchFile(stream, jsonl=jsonl).requests():
            summary.requests += 1
            clean, problem = validate_request(index, request, job.api_name)
            encoded = encode_request(clean) if clean is not None else b""
            if clean is not None and len(encoded) > limit:
                problem = f"request {index}: is larger than one batch job input ({limit:,} bytes)"
            if problem is not None:
                summary.rejected += 1
                summary.first_rejection = summary.first_rejection or problem
                rejected.write(json.dumps({"index": index, "message": problem},
                                          ensure_ascii=False).encode("utf-8") + b"\n")
                continue
            summary.valid += 1
            yield index, encoded

    try:
        for chunk in split_requests(valid(), max_job_bytes):
            write_chunk(chunk)
            summary.chunks.append({"name": chunk.name, "requests": len(chunk.indices),
                                   "bytes": len(chunk.body)})
    finally:
        stream.close()
    rejected.close()
    if summary.requests == 0:
        if jsonl:
            raise InputError("the requests file holds no requests.")
        stream = open_stream()
        try:
            raise InputError(why_no_requests(stream))
        finally:
            stream.close()
    if summary.valid == 0:
        raise InputError(f"the requests file has no valid request ({summary.rejected:,} "
                         f"rejected; first: {summary.first_rejection}).")
    return summary
