"""``results.json`` assembled from blocks: each chunk stages its part, the last step commits.

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

Ownership: staged blocks are invisible until committed, and the commit happens only after the
run checked that it still owns the output folder. A commit discards every uncommitted block
of the blob, so a commit by another run can drop our staged parts; the commit then fails with
``InvalidBlockList`` and the caller stages the parts again from the chunk outputs
(:class:`MissingBlocks`) before committing once more.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from azure.core.exceptions import AzureError, HttpResponseError
from azure.storage.blob import BlobBlock, BlobClient, ContentSettings

from recobatch.chunking import iter_results, record
from recobatch.errors import StorageError
from recobatch.storage import BLOCK_SIZE, safe_error

HEAD, SEPARATOR, FOOT = b'{"results":[', b",", b"]}"
BLOCK_BYTES = BLOCK_SIZE  # a part's blocks are this big (the last one smaller)
RESULTS_CONTENT_TYPE = "application/json"


class MissingBlocks(StorageError):
    """The commit named blocks that are not staged (another writer's commit dropped them)."""


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


def _records(output: bytes | IO[bytes], indices: list[int], name: str) -> Iterator[bytes]:
    """The chunk's merged records, joined by commas; checks one result per request."""
    results = iter_results(output, len(indices), name)
    first = True
    for index, result in zip(indices, results, strict=False):
        yield (b"" if first else SEPARATOR) + record(index, result)
        first = False
    for _extra in results:  # drains the check: raises if the counts differ
        pass


def stage_chunk(blob: BlobClient, tag: str, chunk: int, indices: list[int],
                output: bytes | IO[bytes], name: str) -> StagedPart:
    """Stage chunk ``chunk``'s merged records as blocks of ``blob``; nothing is committed.

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

    def flush() -> None:
        nonlocal blocks, size
        _stage(blob, block_id(tag, _chunk_part(chunk), blocks), bytes(buffer))
        blocks += 1
        size += len(buffer)
        buffer.clear()

    for piece in _records(output, indices, name):
        buffer += piece
        if len(buffer) >= BLOCK_BYTES:
            flush()
    if buffer:
        flush()
    return StagedPart(chunk=chunk, results=len(indices), blocks=blocks, size=size)


def commit_results(blob: BlobClient, tag: str, parts: Iterable[StagedPart]) -> int:
    """Stage head, separators and foot, commit every part in chunk order; return the size.

    Parts without blocks (no results) are left out, so the bytes equal a merge in one pass.

    Raises
    ------
    MissingBlocks
        A part's blocks are no longer staged: stage them again and call this again.
    StorageError
        Any other storage failure.
    """
    ids = [block_id(tag, "head00", 0)]
    _stage(blob, ids[0], HEAD)
    size = len(HEAD)
    written = 0
    for part in sorted(parts, key=lambda p: p.chunk):
        if not part.blocks:
            continue
        if written:
            ids.append(block_id(tag, f"s{part.chunk:05d}", 0))
            _stage(blob, ids[-1], SEPARATOR)
            size += len(SEPARATOR)
        ids.extend(block_id(tag, _chunk_part(part.chunk), n) for n in range(part.blocks))
        size += part.size
        written += 1
    ids.append(block_id(tag, "foot00", 0))
    _stage(blob, ids[-1], FOOT)
    size += len(FOOT)
    try:
        blob.commit_block_list([BlobBlock(block_id=i) for i in ids],
                               content_settings=ContentSettings(
                                   content_type=RESULTS_CONTENT_TYPE))
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
        blob.stage_block(block, data)
    except AzureError as exc:
        raise StorageError(f"cannot write blob {blob.blob_name}: {safe_error(exc)}") from None
