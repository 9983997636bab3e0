"""Prepare a run: stream a requests file, validate, split into chunks (no storage here).

The caller supplies where chunks and rejections go (callbacks), so the same code runs in the
``prepare_batch`` activity, in tests and in the benchmark. Memory holds one chunk at a time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from recobatch.batchfile import (
    SeedFile,
    compact_run,
    jsonl_requests,
    validate_request,
)
from recobatch.chunking import Chunk, ChunkSplitter, encode_request, max_request_bytes
from recobatch.errors import InputError
from recobatch.jobspec import JobSettings
from recobatch.jsonstream import Run
from recobatch.limits import bounded

USER_RECOMMEND = "UserRecommend"


@dataclass
class PrepareSummary:
    """What prepare found: counts, chunks written, the effective job settings."""

    requests: int = 0
    valid: int = 0
    rejected: int = 0
    chunks: list[dict[str, Any]] = field(default_factory=list)
    job: JobSettings | None = None
    first_rejection: str | None = None


class _JobChangesApi(Exception):
    """A ``"job"`` after the first requests changes the api name: validate again."""

    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__("restart")
        self.job = job


def prepare(open_stream: Callable[[], IO[bytes]], jsonl: bool, base_job: JobSettings,
            caller_job: Mapping[str, Any] | None, max_job_bytes: int,
            write_chunk: Callable[[Chunk], None],
            open_rejected: Callable[[], IO[bytes]]) -> PrepareSummary:
    """Stream, validate and split a requests file, in one pass.

    Job settings: app settings, then the file's ``"job"``, then ``caller_job`` (the caller's
    explicit choice wins). The file is read once; only when its ``"job"`` comes after
    requests and changes the api name (which decides validation) is it read a second time,
    knowing the job (chunks of the first pass are then written again under the same names).
    Invalid JSON is found where the pass reaches it, so chunks may be written before a file
    is refused (they are never submitted).

    Parameters
    ----------
    open_stream : callable
        Opens the file from its start (called once, or twice as above).
    write_chunk : callable
        Stores one :class:`Chunk` (its body and its indices).
    open_rejected : callable
        Opens (from empty) the writer of ``rejected.jsonl`` (``{"index", "message"}`` lines);
        closed by prepare (aborted, when it has ``abort``, if the pass does not finish).

    Raises
    ------
    InputError
        Invalid JSON, wrong shape, a limit passed, a bad ``job``, or no valid request.
    """
    base_job.with_overrides(caller_job)  # a bad caller job fails before any reading
    try:
        return _pass(open_stream, jsonl, base_job, caller_job, max_job_bytes, write_chunk,
                     open_rejected, None)
    except _JobChangesApi as restart:
        return _pass(open_stream, jsonl, base_job, caller_job, max_job_bytes, write_chunk,
                     open_rejected, restart.job)


def _pass(open_stream: Callable[[], IO[bytes]], jsonl: bool, base_job: JobSettings,
          caller_job: Mapping[str, Any] | None, max_job_bytes: int,
          write_chunk: Callable[[Chunk], None], open_rejected: Callable[[], IO[bytes]],
          known_job: dict[str, Any] | None) -> PrepareSummary:
    job = base_job.with_overrides(known_job).with_overrides(caller_job)
    summary = PrepareSummary(job=job)
    limit = max_request_bytes(max_job_bytes)
    stream = open_stream()
    reader: SeedFile | None = None

    def on_job(found: dict[str, Any]) -> None:
        if known_job is not None:
            return  # validated by the first pass
        new = base_job.with_overrides(found).with_overrides(caller_job)
        if summary.requests and new.api_name != summary.job.api_name:  # type: ignore[union-attr]
            raise _JobChangesApi(found)
        summary.job = new
        assert reader is not None
        reader.item_runs = new.api_name != USER_RECOMMEND

    if jsonl:
        requests: Iterator[tuple[int, Any]] = jsonl_requests(stream, limit)
    else:
        reader = SeedFile(stream, limit, on_job, item_runs=job.api_name != USER_RECOMMEND)
        requests = reader.requests()
    rejected = open_rejected()

    def reject(index: int, problem: str) -> None:
        summary.rejected += 1
        summary.first_rejection = summary.first_rejection or problem
        rejected.write(json.dumps({"index": index, "message": problem},
                                  ensure_ascii=False).encode("utf-8") + b"\n")

    def one(index: int, request: Any, splitter: ChunkSplitter) -> Iterator[Chunk]:
        summary.requests += 1
        clean, problem = validate_request(index, request, summary.job.api_name)  # type: ignore[union-attr]
        encoded = encode_request(clean) if clean is not None else b""
        if clean is not None and len(encoded) > limit:
            problem = f"request {index}: is larger than one batch job input ({limit:,} bytes)"
        if problem is not None:
            reject(index, problem)
            return
        summary.valid += 1
        yield from splitter.add(index, encoded)

    def chunks() -> Iterator[Chunk]:
        splitter = ChunkSplitter(max_job_bytes)
        for index, request in requests:
            if not isinstance(request, Run):
                yield from one(index, request, splitter)
                continue
            compact, largest = compact_run(request.raw)
            if largest <= limit:
                summary.requests += request.count
                summary.valid += request.count
                yield from splitter.add_run(index, compact)
                continue
            for offset, piece in enumerate(compact.split(b"},")):
                piece = piece if piece.endswith(b"}") else piece + b"}"
                yield from one(index + offset, json.loads(piece), splitter)
        yield from splitter.finish()

    finished = False
    try:
        for chunk in chunks():
            write_chunk(chunk)
            summary.chunks.append({"name": chunk.name, "requests": len(chunk.indices),
                                   "bytes": len(chunk.body)})
        finished = True
    finally:
        stream.close()
        if finished:
            rejected.close()
        else:
            getattr(rejected, "abort", rejected.close)()
    if summary.requests == 0:
        raise InputError(reader.no_requests() if reader is not None
                         else "the requests file holds no requests.")
    if summary.valid == 0:
        raise InputError(bounded(f"the requests file has no valid request "
                                 f"({summary.rejected:,} rejected; first: "
                                 f"{summary.first_rejection})."))
    return summary
