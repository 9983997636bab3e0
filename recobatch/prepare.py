"""Prepare a run: stream a requests file, validate, split into chunks (no storage here).

The caller supplies where chunks and rejections go (callbacks), so the same code runs in the
``prepare_batch`` activity, in tests and in the benchmark. Memory holds one chunk at a time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from recobatch.batchfile import BatchFile, validate_request
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


class _RestartNeeded(Exception):
    """The file's ``job`` came after its requests and changed ``apiName``."""

    def __init__(self, file_job: dict[str, Any]) -> None:
        super().__init__("restart")
        self.file_job = file_job


def prepare(open_stream: Callable[[], IO[bytes]], jsonl: bool, base_job: JobSettings,
            caller_job: Mapping[str, Any] | None, max_job_bytes: int,
            write_chunk: Callable[[Chunk], None],
            open_rejected: Callable[[], IO[bytes]]) -> PrepareSummary:
    """Stream, validate and split a requests file.

    Job settings: app settings, then the file's ``"job"``, then ``caller_job`` (the caller's
    explicit choice wins). When the file's ``"job"`` comes after its requests and changes
    ``apiName``, validation depended on it: the file is read a second time.

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
    try:
        return _prepare_once(open_stream, jsonl, base_job, caller_job, None, max_job_bytes,
                             write_chunk, open_rejected)
    except _RestartNeeded as restart:
        return _prepare_once(open_stream, jsonl, base_job, caller_job, restart.file_job,
                             max_job_bytes, write_chunk, open_rejected)


def _prepare_once(open_stream: Callable[[], IO[bytes]], jsonl: bool, base_job: JobSettings,
                  caller_job: Mapping[str, Any] | None, known_file_job: dict[str, Any] | None,
                  max_job_bytes: int, write_chunk: Callable[[Chunk], None],
                  open_rejected: Callable[[], IO[bytes]]) -> PrepareSummary:
    summary = PrepareSummary()
    job = base_job.with_overrides(known_file_job).with_overrides(caller_job)
    stream = open_stream()
    rejected = open_rejected()
    batch = BatchFile(stream, jsonl=jsonl)
    applied = known_file_job is not None
    limit = max_request_bytes(max_job_bytes)

    def valid() -> Iterator[tuple[int, bytes]]:
        nonlocal job, applied
        for index, request in batch.requests():
            if not applied and batch.job is not None:
                job = base_job.with_overrides(batch.job).with_overrides(caller_job)
                applied = True
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
    if not applied and batch.job is not None:
        late = base_job.with_overrides(batch.job).with_overrides(caller_job)
        if late.api_name != job.api_name and summary.requests:
            raise _RestartNeeded(batch.job)
        job = late
    summary.job = job
    if summary.requests == 0:
        raise InputError("the requests file holds no requests.")
    if summary.valid == 0:
        raise InputError(f"the requests file has no valid request ({summary.rejected:,} "
                         f"rejected; first: {summary.first_rejection}).")
    return summary
