"""Split a request stream into job-sized chunks, and merge chunk outputs back in input order.

Split: each chunk is a complete seed-format input (``{"requests":[...]}``) of at most
``max_job_bytes`` bytes, requests in input order, with the original index of each request.
Merge: chunk outputs (in chunk order) become one ``results.json`` written incrementally, and
the upstream ``request N:`` error lines are renumbered to original indices and interleaved with
validation rejections into ``errors.txt``, in original index order. Only one chunk is held in
memory at a time.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from recobatch import naming
from recobatch.errors import OutputInvalidError
from recobatch.jsonstream import (
    JsonDepthError,
    JsonStream,
    JsonSyntaxError,
    Refused,
    nested_pattern,
)
from recobatch.limits import MAX_JSON_DEPTH, MAX_RESULT_BYTES, PARSE_WINDOW, bounded

HEAD = b'{"requests":['
TAIL = b"]}"
OVERHEAD = len(HEAD) + len(TAIL)
SUCCEEDED = "Succeeded"

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_ERROR_LINE = re.compile(r"^request (\d+): ?(.*)$")
# One result as the service writes it, nested 5 deep (result, recommendations, one
# recommendation, its items, one item): parsed at once.
_RESULT = re.compile(nested_pattern(5))
# How a result of the service's output starts (v4 results open with their "request"): where
# the output's results are found by it, a block of them is parsed in one orjson call, checked
# (see JsonStream.items); otherwise they are walked one by one, with the same outcome.
_RESULT_START = b'{"request"'


def _dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON (orjson: the merge writes millions of these)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # e.g. an integer beyond 64 bits: the standard encoder copes
        return _ENCODER.encode(value).encode("utf-8")


dumps = _dumps  # the same encoding for the other results formats (recobatch.assembly)


def encode_request(request: Any) -> bytes:
    """The compact UTF-8 JSON of one request, as it appears in a chunk."""
    return _dumps(request)


def max_request_bytes(max_job_bytes: int) -> int:
    """Largest encoded request that fits in a chunk on its own."""
    return max_job_bytes - OVERHEAD


@dataclass
class Chunk:
    """One job's input: its number (from 1), its seed-format body and original indices."""

    number: int
    body: bytes
    indices: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return naming.chunk_name(self.number)


class ChunkSplitter:
    """Groups encoded requests into chunks of at most ``max_job_bytes`` bytes, in order.

    Feed requests one at a time (:meth:`add`) or as runs of already compact, comma-joined
    requests (:meth:`add_run`, copied slice by slice); each call yields the chunks it
    completes, :meth:`finish` the last one. A run and the same requests fed one by one give
    the same chunks.
    """

    def __init__(self, max_job_bytes: int) -> None:
        self._max = max_job_bytes
        self._limit = max_request_bytes(max_job_bytes)
        # One growing buffer per chunk: the small encoded requests are copied in and freed
        # at once (orjson's bytes objects keep a ~4 KiB allocation each, so holding them
        # would cost hundreds of MB per chunk).
        self._body = bytearray(HEAD)
        self._indices: list[int] = []
        self._number = 0

    def add(self, index: int, encoded: bytes) -> Iterator[Chunk]:
        """Add one request (:func:`encode_request` output).

        Raises
        ------
        ValueError
            When it alone does not fit (callers reject those before splitting).
        """
        if len(encoded) > self._limit:
            raise ValueError(f"request {index} alone is larger than a chunk")
        if self._indices and len(self._body) + 1 + len(encoded) + len(TAIL) > self._max:
            yield self._flush()
        if self._indices:
            self._body += b","
        self._body += encoded
        self._indices.append(index)

    def add_run(self, first: int, compact: bytes) -> Iterator[Chunk]:
        """Add requests ``first, first + 1, ...`` held comma-joined in ``compact``.

        Each request there is compact JSON that ends with the run's only kind of ``}``
        (requests of one level, whose strings hold no brace), and none is larger than a chunk:
        chunk ends are found with ``rfind``, so nothing is done per request.
        """
        start, size = 0, len(compact)
        while start < size:
            room = self._max - len(TAIL) - len(self._body) - (1 if self._indices else 0)
            end = size if size - start <= room else compact.rfind(b"}", start, start + room) + 1
            if end <= start:
                if not self._indices:
                    raise ValueError(f"request {first} alone is larger than a chunk")
                yield self._flush()
                continue
            count = compact.count(b"}", start, end)
            if self._indices:
                self._body += b","
            self._body += compact[start:end]
            self._indices.extend(range(first, first + count))
            first += count
            start = end + 1
            if start < size:
                yield self._flush()

    def finish(self) -> Iterator[Chunk]:
        """The last chunk, if any request is left."""
        if self._indices:
            yield self._flush()

    def _flush(self) -> Chunk:
        self._number += 1
        self._body += TAIL
        chunk = Chunk(self._number, bytes(self._body), self._indices)
        self._body, self._indices = bytearray(HEAD), []
        return chunk


def split_requests(requests: Iterable[tuple[int, bytes]], max_job_bytes: int) -> Iterator[Chunk]:
    """Group encoded requests into chunks of at most ``max_job_bytes`` bytes, in order.

    Parameters
    ----------
    requests : iterable of (int, bytes)
        Original index and :func:`encode_request` output, in input order.
    max_job_bytes : int
        Size limit of one chunk's body.

    Raises
    ------
    ValueError
        When one request alone does not fit (callers reject those before splitting).
    """
    splitter = ChunkSplitter(max_job_bytes)
    for index, encoded in requests:
        yield from splitter.add(index, encoded)
    yield from splitter.finish()


@dataclass
class ChunkOutput:
    """What one chunk left behind, for the merge.

    ``output`` is the job's output blob (bytes or a binary stream, JSON ``{"results": [...]}``)
    and ``error_text`` its error blob; both are ignored unless ``status`` is ``Succeeded``.
    """

    name: str
    indices: list[int]
    status: str
    output: bytes | IO[bytes] | None = None
    error_text: str | None = None


@dataclass
class MergeCounts:
    """How many results and error lines the merge wrote."""

    results: int = 0
    errors: int = 0


def iter_results(output: bytes | IO[bytes] | None, expected: int, name: str) -> Iterator[Any]:
    """Stream the ``results`` of a job output, checking there is exactly one per request.

    Results are built one at a time (:mod:`recobatch.jsonstream`), so a large output never
    sits in memory whole; nesting is limited to ``MAX_JSON_DEPTH`` and one result to
    ``MAX_RESULT_BYTES``, both checked before anything is built.

    Raises
    ------
    OutputInvalidError
        Missing, not JSON, over a limit, or not ``{"results": [...]}`` with ``expected``
        results (raised when the stream ends, or as soon as there is one result too many).
    """
    if output is None:
        raise OutputInvalidError(f"{name}: the job wrote no output blob.")
    stream = io.BytesIO(output) if isinstance(output, bytes | bytearray) else output
    count = 0
    try:
        for result in _results(JsonStream(stream)):
            if isinstance(result, Refused):
                raise OutputInvalidError(
                    f"{name}: result {count} of the job's output is {result.size:,} bytes, "
                    f"over the {MAX_RESULT_BYTES:,}-byte limit.")
            count += 1
            if count > expected:
                break
            yield result
    except JsonDepthError as exc:
        raise OutputInvalidError(f"{name}: the job's output is nested deeper than "
                                 f"{MAX_JSON_DEPTH} levels (the limit) at byte "
                                 f"{exc.offset:,}.") from None
    except JsonSyntaxError as exc:
        raise OutputInvalidError(bounded(f"{name}: the job's output blob is not valid JSON at "
                                         f"byte {exc.offset:,}: {exc.problem}.")) from None
    if count != expected:
        raise OutputInvalidError(
            f"{name}: the job's output holds {'more than ' if count > expected else ''}"
            f"{min(count, expected)} results for {expected} requests "
            '(expected {"results": [...]}, one per request).')


def _results(scan: JsonStream) -> Iterator[Any]:
    """The elements of every top-level ``"results"`` list (other values are skipped)."""
    if scan.peek() != ord("{"):
        scan.skip()
    else:
        for key in scan.members():
            if key == "results" and scan.peek() == ord("["):
                yield from scan.items(2, MAX_RESULT_BYTES, None, _RESULT, PARSE_WINDOW,
                                      bulk=_RESULT_START)
            else:
                scan.skip(depth=1)
    scan.end()


def count_results(output: bytes | IO[bytes] | None, expected: int, name: str) -> int:
    """Check a job output (see :func:`iter_results`) and return its number of results."""
    return sum(1 for _ in iter_results(output, expected, name))


def translate_errors(chunk: ChunkOutput) -> list[tuple[int, str]]:
    """The chunk's error lines as ``(original index, message)``, sorted by index.

    Lines not about one request are kept, placed at the chunk's first request. A chunk that
    did not succeed gives one line per request saying it was not scored.
    """
    first = chunk.indices[0] if chunk.indices else 0
    if chunk.status != SUCCEEDED:
        return [(i, f"not scored: {chunk.name} ended {chunk.status}") for i in chunk.indices]
    lines: list[tuple[int, str]] = []
    for raw in (chunk.error_text or "").splitlines():
        if not raw.strip():
            continue
        match = _ERROR_LINE.match(raw)
        local = int(match.group(1)) if match else -1
        if match and 0 <= local < len(chunk.indices):
            lines.append((chunk.indices[local], match.group(2)))
        else:
            lines.append((first, f"{chunk.name}: {raw.strip()}"))
    lines.sort(key=lambda line: line[0])
    return lines


class ErrorLines:
    """Writes ``errors.txt``: each chunk's lines and the rejected requests, in index order."""

    def __init__(self, rejected: Iterable[tuple[int, str]], errors_out: IO[bytes]) -> None:
        self._pending = iter(rejected)
        self._next: tuple[int, str] | None = next(self._pending, None)
        self._out = errors_out
        self.count = 0

    def _flush_rejected(self, before: int | None) -> None:
        while self._next is not None and (before is None or self._next[0] < before):
            self._out.write(_rejected_line(self._next).encode("utf-8"))
            self.count += 1
            self._next = next(self._pending, None)

    def add(self, chunk: ChunkOutput) -> None:
        """The chunk's lines (see :func:`translate_errors`), after the rejections before them."""
        for index, message in translate_errors(chunk):
            self._flush_rejected(index)
            self._out.write(f"request {index}: {message}\n".encode())
            self.count += 1

    def finish(self) -> int:
        """The rejections after the last chunk; returns the number of lines written."""
        self._flush_rejected(None)
        return self.count


def merge_errors(chunks: Iterable[ChunkOutput], rejected: Iterable[tuple[int, str]],
                 errors_out: IO[bytes]) -> int:
    """Write ``errors.txt`` alone (results are assembled from staged blocks); return lines."""
    lines = ErrorLines(rejected, errors_out)
    for chunk in chunks:
        lines.add(chunk)
    return lines.finish()


def merge_outputs(chunks: Iterable[ChunkOutput], rejected: Iterable[tuple[int, str]],
                  results_out: IO[bytes], errors_out: IO[bytes]) -> MergeCounts:
    """Write ``results.json`` and ``errors.txt`` from chunk outputs, in original order.

    The reference for :mod:`recobatch.assembly`, which writes the same bytes from blocks
    staged per chunk.

    Parameters
    ----------
    chunks : iterable of ChunkOutput
        In chunk order; loaded lazily by the caller so one is in memory at a time.
    rejected : iterable of (int, str)
        Validation rejections ``(index, "request <index>: ...")`` in index order.
    results_out, errors_out : binary writable
        Where ``{"results": [{"index": i, "request": ..., "recommendations": ...}]}`` and
        ``request <i>: <message>`` lines go.
    """
    counts = MergeCounts()
    lines = ErrorLines(rejected, errors_out)
    results_out.write(b'{"results":[')
    for chunk in chunks:
        if chunk.status == SUCCEEDED:
            results = iter_results(chunk.output, len(chunk.indices), chunk.name)
            for index, result in zip(chunk.indices, results, strict=False):
                results_out.write((b"," if counts.results else b"") + record(index, result))
                counts.results += 1
            for _extra in results:  # drains the check: raises if the counts differ
                pass
        lines.add(chunk)
    counts.errors = lines.finish()
    results_out.write(b"]}")
    return counts


def record(index: int, result: Any) -> bytes:
    """A merged result: the service's result with the request's original index first."""
    body = _dumps(result)
    if isinstance(result, dict):
        return (b'{"index":%d' % index) + (b"," + body[1:] if result else b"}")
    return b'{"index":%d,"result":' % index + body + b"}"


def _rejected_line(item: tuple[int, str]) -> str:
    index, message = item
    # rejected.jsonl messages already start with "request <index>:"; keep one prefix.
    if not message.startswith(f"request {index}:"):
        message = f"request {index}: {message}"
    return message.rstrip("\n") + "\n"
