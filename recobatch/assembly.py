"""The results file assembled from blocks: each chunk stages its part, the last step commits.

A block blob is a list of blocks. Each chunk, as soon as its output is verified, turns its
results into merged records (:func:`recobatch.chunking.record`) and stages them as uncommitted
blocks of the run's ``results.json`` (:func:`stage_chunk`), while other chunks still run. The
step after the last chunk only stages three kinds of tiny blocks (the ``{"results":[`` head, a
``,`` between two non-empty parts, the ``]}`` foot) and commits the block list in chunk order
(:func:`commit_results`): seconds, whatever the size. The bytes are exactly what one pass over
the outputs in order writes (:func:`recobatch.chunking.merge_outputs`).

Block ids are fixed by the run, the part and the block's number, so the commit needs only the
number of blocks of each part (ids, not payloads, pass through the orchestration) and a chunk
staged again (a retried activity) replaces its own blocks. Every id is 44 characters, as
:class:`recobatch.storage.BlobWriter`'s, since Azure wants one id length per blob.

Formats (:data:`FORMATS`, job setting ``outputFormat``): ``json`` (``results.json``, the v4
output: head ``{"results":[``, records joined by ``,``, a ``,`` block between two non-empty
parts, foot ``]}``), ``jsonl`` (``results.jsonl``: one line a scored request, no head, no
separators, no foot) and ``csv`` (``results.csv``: head ``index,rank,itemId,score``, one row a
recommended item, RFC 4180, CRLF). A format is its head, record, separator and foot; staging
and committing are the same for all three.

Ownership: staged blocks are invisible until committed, and the commit happens only after the
run checked that it still owns the output folder. A commit discards every uncommitted block
of the blob, so a commit by another run can drop our staged parts; the commit then fails with
``InvalidBlockList`` and the caller stages the parts again from the chunk outputs
(:class:`MissingBlocks`) before committing once more.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any

from azure.core.exceptions import AzureError, HttpResponseError
from azure.storage.blob import BlobBlock, BlobClient, ContentSettings

from recobatch.chunking import dumps, iter_results, record
from recobatch.errors import StorageError
from recobatch.storage import BLOCK_SIZE, STAGE_OPTIONS, safe_error

HEAD, SEPARATOR, FOOT = b'{"results":[', b",", b"]}"
BLOCK_BYTES = BLOCK_SIZE  # a part's blocks are this big (the last one smaller)
STAGE_THREADS = 3  # Put Block calls of one part in flight at once
RESULTS_CONTENT_TYPE = "application/json"
CSV_HEADER = ("index", "rank", "itemId", "score")


class MissingBlocks(StorageError):
    """The commit named blocks that are not staged (another writer's commit dropped them)."""


def _json_record(index: int, result: Any, _metadata: bool) -> bytes:
    return record(index, result)


def _recommendations(result: Any) -> list[tuple[int, dict, Any]]:
    """``(rank, item, recommendation)`` for each recommended item, rank counted from 1.

    A recommendation is a set of items with one rating (v4); a set of several items (an
    ``Fbt`` build) gives each of its items the set's rank and score.
    """
    recs = result.get("recommendations") if isinstance(result, dict) else None
    out = []
    for rank, rec in enumerate(recs if isinstance(recs, list) else [], start=1):
        items = rec.get("items") if isinstance(rec, dict) else None
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                out.append((rank, item, rec))
    return out


def _jsonl_record(index: int, result: Any, metadata: bool) -> bytes:
    """``{"index", "request", "recommendations": [{"itemId", "score"}]}`` and a newline;
    ``name``, ``metadata`` and ``reasoning`` only with ``includeMetadata``."""
    if not isinstance(result, dict):
        return record(index, result) + b"\n"  # not a v4 result: kept as json keeps it
    recs = []
    for _rank, item, rec in _recommendations(result):
        entry = {"itemId": item.get("itemId"), "score": rec.get("rating")}
        if metadata:
            entry.update(name=item.get("name"), metadata=item.get("metadata"),
                         reasoning=rec.get("reasoning"))
        recs.append(entry)
    return dumps({"index": index, "request": result.get("request"),
                  "recommendations": recs}) + b"\n"


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return dumps(value).decode("utf-8")  # numbers as json writes them


def _csv_record(index: int, result: Any, _metadata: bool) -> bytes:
    """One ``index,rank,itemId,score`` row per recommended item (none for no result)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    for rank, item, rec in _recommendations(result):
        writer.writerow((index, rank, _csv_text(item.get("itemId")),
                         _csv_text(rec.get("rating"))))
    return text.getvalue().encode("utf-8")


def _csv_head() -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n").writerow(CSV_HEADER)
    return text.getvalue().encode("utf-8")


@dataclass(frozen=True)
class OutputFormat:
    """How one results format is laid out: the blob's ends, records and joints."""

    name: str  # the blob's name is recobatch.naming.results_blob(input, name)
    content_type: str
    head: bytes
    foot: bytes
    separator: bytes  # between two records, and as a block between two non-empty parts
    record: Callable[[int, Any, bool], bytes]


FORMATS: dict[str, OutputFormat] = {
    "json": OutputFormat("json", RESULTS_CONTENT_TYPE, HEAD, FOOT, SEPARATOR,
                         _json_record),
    "jsonl": OutputFormat("jsonl", "application/x-ndjson; charset=utf-8",
                          b"", b"", b"", _jsonl_record),
    "csv": OutputFormat("csv", "text/csv; charset=utf-8; header=present",
                        _csv_head(), b"", b"", _csv_record),
}
DEFAULT_FORMAT = "json"


def output_format(name: str | None) -> OutputFormat:
    """The format called ``name`` (``json`` when ``None``); ``ValueError`` for another name."""
    try:
        return FORMATS[name or DEFAULT_FORMAT]
    except KeyError:
        raise ValueError(f"unknown output format {name!r}") from None


@dataclass(frozen=True)
class StagedPart:
    """One chunk's staged part of ``results.json``: its number, results, blocks and bytes."""

    chunk: int
    results: int
    blocks: int
    size: int

    def as_dict(self) -> dict[str, int]:
        return {"chunk": self.chunk, "results": self.results, "blocks": self.blocks,
                "size": self.size}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> StagedPart:
        return cls(int(value["chunk"]), int(value["results"]), int(value["blocks"]),
                   int(value["size"]))


def run_tag(instance_id: str) -> str:
    """Ten characters naming the run in its block ids."""
    return hashlib.sha256(instance_id.encode("utf-8")).hexdigest()[:10]


def block_id(tag: str, part: str, number: int) -> str:
    """The id of block ``number`` of ``part`` (``c00012`` for chunk 12, ``head00``, ...)."""
    raw = f"{tag}-{part}-{number:014d}"  # 32 bytes: 44 base64 characters, as BlobWriter's
    return base64.b64encode(raw.encode("ascii")).decode("ascii")


def _chunk_part(chunk: int) -> str:
    return f"c{chunk:05d}"


def _records(output: bytes | IO[bytes], indices: list[int], name: str, fmt: OutputFormat,
             metadata: bool) -> Iterator[bytes]:
    """The chunk's records in ``fmt``, joined by its separator; checks one result per
    request."""
    results = iter_results(output, len(indices), name)
    first = True
    for index, result in zip(indices, results, strict=False):
        yield (b"" if first else fmt.separator) + fmt.record(index, result, metadata)
        first = False
    for _extra in results:  # drains the check: raises if the counts differ
        pass


def stage_chunk(blob: BlobClient, tag: str, chunk: int, indices: list[int],
                output: bytes | IO[bytes], name: str, fmt: OutputFormat = FORMATS["json"],
                metadata: bool = False) -> StagedPart:
    """Stage chunk ``chunk``'s records in ``fmt`` as blocks of ``blob``; nothing is committed.

    ``metadata`` (the job's ``includeMetadata``) keeps item names, metadata and reasoning in
    the ``jsonl`` format (``json`` keeps the service's results whole, ``csv`` never has them).

    Raises
    ------
    OutputInvalidError
        The output is not ``{"results": [...]}`` with one result per request (some blocks may
        be staged by then: uncommitted, they are dropped by the next commit).
    StorageError
        Staging failed.
    """
    buffer = bytearray()
    blocks = size = 0
    # Blocks upload in threads while the next ones are encoded (Azure and Azurite take
    # parallel Put Block calls); at most STAGE_THREADS wait, so memory stays a few blocks.
    pool = ThreadPoolExecutor(max_workers=STAGE_THREADS, thread_name_prefix="stage-block")
    pending: deque[Future[None]] = deque()

    def flush() -> None:
        nonlocal blocks, size
        while len(pending) >= STAGE_THREADS:
            pending.popleft().result()
        pending.append(pool.submit(_stage, blob, block_id(tag, _chunk_part(chunk), blocks),
                                   bytes(buffer)))
        blocks += 1
        size += len(buffer)
        buffer.clear()

    try:
        for piece in _records(output, indices, name, fmt, metadata):
            buffer += piece
            if len(buffer) >= BLOCK_BYTES:
                flush()
        if buffer:
            flush()
        while pending:
            pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return StagedPart(chunk=chunk, results=len(indices), blocks=blocks, size=size)


def commit_results(blob: BlobClient, tag: str, parts: Iterable[StagedPart],
                   fmt: OutputFormat = FORMATS["json"]) -> int:
    """Stage head, separators and foot, commit every part in chunk order; return the size.

    Parts without blocks (no results) are left out, so the bytes equal a merge in one pass.
    Empty joints (``jsonl`` and ``csv`` have no separator, ``jsonl`` no head, neither a foot)
    are not staged: a block is never empty.

    Raises
    ------
    MissingBlocks
        A part's blocks are no longer staged: stage them again and call this again.
    StorageError
        Any other storage failure.
    """
    ids: list[str] = []
    size = 0

    def joint(part: str, data: bytes) -> None:
        nonlocal size
        if data:
            ids.append(block_id(tag, part, 0))
            _stage(blob, ids[-1], data)
            size += len(data)

    joint("head00", fmt.head)
    written = 0
    for part in sorted(parts, key=lambda p: p.chunk):
        if not part.blocks:
            continue
        if written:
            joint(f"s{part.chunk:05d}", fmt.separator)
        ids.extend(block_id(tag, _chunk_part(part.chunk), n) for n in range(part.blocks))
        size += part.size
        written += 1
    joint("foot00", fmt.foot)
    try:
        blob.commit_block_list([BlobBlock(block_id=i) for i in ids],
                               content_settings=ContentSettings(
                                   content_type=fmt.content_type))
    except HttpResponseError as exc:
        if getattr(exc, "error_code", None) == "InvalidBlockList":
            raise MissingBlocks(f"cannot commit {blob.blob_name}: staged parts are gone "
                                "(another writer committed the blob).") from None
        raise StorageError(f"cannot write blob {blob.blob_name}: {safe_error(exc)}") from None
    except AzureError as exc:
        raise StorageError(f"cannot write blob {blob.blob_name}: {safe_error(exc)}") from None
    return size


def _stage(blob: BlobClient, block: str, data: bytes) -> None:
    try:
        blob.stage_block(block, data, **STAGE_OPTIONS)
    except AzureError as exc:
        raise StorageError(f"cannot write blob {blob.blob_name}: {safe_error(exc)}") from None
