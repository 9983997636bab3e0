"""The prepare step as it was before the one-pass scanner (ijson, two passes): a reference.

Kept verbatim (trimmed to what prepare uses) so tests can check that today's prepare writes
byte-for-byte the same chunks, index lists and rejected lines for the same input.
"""
# ruff: noqa
from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from collections.abc import Iterable
from typing import IO, Any

import ijson
import orjson

import json as _json
from recobatch import naming
from recobatch.errors import InputError, InputTooLargeError
from recobatch.jobspec import JobSettings

HEAD = b'{"requests":['
TAIL = b"]}"
OVERHEAD = len(HEAD) + len(TAIL)
SUCCEEDED = "Succeeded"

_ENCODER = _json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)



def _dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON (orjson: the merge writes millions of these)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # e.g. an integer beyond 64 bits: the standard encoder copes
        return _ENCODER.encode(value).encode("utf-8")


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
    # One growing buffer per chunk: the small encoded requests are copied in and freed at
    # once (orjson's bytes objects keep a ~4 KiB allocation each, so holding them would cost
    # hundreds of MB per chunk).
    body = bytearray(HEAD)
    indices: list[int] = []
    number = 0
    limit = max_request_bytes(max_job_bytes)
    for index, encoded in requests:
        if len(encoded) > limit:
            raise ValueError(f"request {index} alone is larger than a chunk")
        if indices and len(body) + 1 + len(encoded) + len(TAIL) > max_job_bytes:
            number += 1
            body += TAIL
            yield Chunk(number, bytes(body), indices)
            body, indices = bytearray(HEAD), []
        if indices:
            body += b","
        body += encoded
        indices.append(index)
    if indices:
        body += TAIL
        yield Chunk(number + 1, bytes(body), indices)



JSONL_EXTENSIONS = (".jsonl", ".ndjson")
MAX_ITEM_ID_LENGTH = 50  # the v4 catalog's item id limit
MAX_USER_ID_LENGTH = 255
# A JSON Lines line longer than this cannot be one sane request; stops a newline-less file
# from being read into memory whole.
MAX_LINE_BYTES = 1_048_576
ITEM_KEYS = ("SeedItems",)
USER_KEYS = ("UserId", "SeedItems")


def is_jsonl(name: str) -> bool:
    """True when the blob name says JSON Lines."""
    return name.lower().endswith(JSONL_EXTENSIONS)


def check_size(size: int, max_bytes: int) -> None:
    """Raise :class:`InputTooLargeError` when a requests file is over the limit."""
    if size > max_bytes:
        raise InputTooLargeError(
            f"the requests file is {size:,} bytes, over the {max_bytes:,}-byte limit "
            "(BATCH_MAX_INPUT_BYTES).")


@dataclass(frozen=True)
class Unparsable:
    """A JSON Lines line that is not JSON (rejected as a request, the rest proceed)."""

    problem: str


def read_job(stream: IO[bytes]) -> dict[str, Any] | None:
    """First pass over a seed JSON file: return its top-level ``"job"`` object, if any.

    The whole file is parsed (in C, nothing but ``job`` is built), so invalid JSON anywhere is
    found before a single chunk is written, and the job settings are known before requests
    are validated wherever ``"job"`` sits in the file.

    Raises
    ------
    InputError
        Invalid JSON, ``"job"`` not an object, or more than one ``"job"``.
    """
    try:
        jobs = list(ijson.items(stream, "job", use_float=True))
    except ijson.JSONError as exc:
        raise InputError(f"the requests file is not valid JSON ({_short(exc)}).") from None
    if len(jobs) > 1:
        raise InputError('the requests file has more than one "job".')
    return _job_object(jobs[0]) if jobs else None


class BatchFile:
    """A streaming reader of the requests in one requests file.

    Parameters
    ----------
    stream : binary file-like
        The file's bytes (``read(n)``; ``readline`` for JSON Lines).
    jsonl : bool
        JSON Lines instead of seed JSON. For seed JSON, only ``requests`` is read here (see
        :func:`read_job`); other top-level keys are ignored.
    """

    def __init__(self, stream: IO[bytes], jsonl: bool = False) -> None:
        self._stream = stream
        self._jsonl = jsonl

    def requests(self) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, request)`` in file order (requests are not validated here).

        Raises
        ------
        InputError
            Invalid JSON (seed JSON) or an over-long line (JSON Lines).
        """
        if self._jsonl:
            yield from self._jsonl_requests()
            return
        try:
            # ijson's C backend builds each request; the per-event work never reaches Python.
            yield from enumerate(ijson.items(self._stream, "requests.item", use_float=True))
        except ijson.JSONError as exc:
            raise InputError(f"the requests file is not valid JSON ({_short(exc)}).") from None

    def _jsonl_requests(self) -> Iterator[tuple[int, Any]]:
        index = 0
        first = True
        while True:
            line = self._stream.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                raise InputError(f"request {index}: the line is longer than "
                                 f"{MAX_LINE_BYTES:,} bytes.")
            if first and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            first = False
            if not line.strip():
                continue
            try:
                yield index, orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield index, Unparsable(f"not valid JSON ({_short(exc)})")
            index += 1


def why_no_requests(stream: IO[bytes]) -> str:
    """Explain why a seed JSON file gave no request (reads only the start of the file)."""
    try:
        events = ijson.parse(stream)
        first = next(events, None)
        if first is None or first[:2] != ("", "start_map"):
            return 'the requests file must be a JSON object {"requests": [...]}.'
        keys = []
        for prefix, kind, value in events:
            if prefix == "" and kind == "map_key":
                keys.append(str(value))
            elif prefix == "requests":
                if kind not in ("start_array", "end_array"):
                    return '"requests" must be a list of request objects.'
                break
            elif prefix == "" and kind == "end_map":
                found = f" (found {', '.join(repr(_clip(k)) for k in keys)})" if keys else ""
                return f'the requests file has no "requests" list{found}.'
    except ijson.JSONError as exc:
        return f"the requests file is not valid JSON ({_short(exc)})."
    return "the requests file holds no requests."


def _job_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError('the requests file\'s "job" must be a JSON object.')
    return value


def _short(exc: Exception) -> str:
    return _clip(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 120)


def _clip(text: Any, limit: int = 60) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate_request(index: int, request: Any, api_name: str) -> tuple[dict[str, Any] | None,
                                                                          str | None]:
    """Check one request; return ``(normalised request, None)`` or ``(None, message)``.

    The message starts with ``request <index>:`` and says what is wrong. The normalised
    request holds only the keys the service reads (``SeedItems``; ``UserId`` for
    ``UserRecommend``).
    """
    problem = _problem(request, api_name)
    if problem is not None:
        return None, f"request {index}: {problem}"
    if api_name != "UserRecommend":
        return request, None  # exactly {"SeedItems": [...]}: nothing to strip
    clean: dict[str, Any] = {"UserId": request["UserId"]}
    if "SeedItems" in request:
        clean["SeedItems"] = request["SeedItems"]
    return clean, None


def _problem(request: Any, api_name: str) -> str | None:
    if api_name == "ItemRecommend" and type(request) is dict and len(request) == 1 \
            and _good_seeds(request.get("SeedItems")):
        return None  # the common case, checked with as little work as possible
    return _slow_problem(request, api_name)


def _good_seeds(seeds: Any) -> bool:
    if type(seeds) is not list or not seeds:
        return False
    for seed in seeds:
        if type(seed) is not str or not 0 < len(seed) <= MAX_ITEM_ID_LENGTH or seed.isspace():
            return False
    return True


def _slow_problem(request: Any, api_name: str) -> str | None:
    if isinstance(request, Unparsable):
        return request.problem
    if not isinstance(request, dict):
        return "must be a JSON object"
    known = USER_KEYS if api_name == "UserRecommend" else ITEM_KEYS
    unknown = [key for key in request if key not in known]
    if unknown:
        return (f'unknown key "{_clip(unknown[0])}" (known for {api_name}: '
                f'{", ".join(known)})')
    if api_name == "UserRecommend":
        user = request.get("UserId")
        if user is None:
            return "UserId is missing (required for UserRecommend)"
        if not isinstance(user, str) or not user.strip():
            return "UserId must be a non-empty string"
        if len(user) > MAX_USER_ID_LENGTH:
            return f"UserId is longer than {MAX_USER_ID_LENGTH} characters"
        if "SeedItems" not in request:
            return None
    elif "SeedItems" not in request:
        return "SeedItems is missing"
    seeds = request["SeedItems"]
    if not isinstance(seeds, list) or not seeds \
            or not all(isinstance(s, str) and s.strip() for s in seeds):
        return "SeedItems must be a non-empty list of strings"
    long_ids = [s for s in seeds if len(s) > MAX_ITEM_ID_LENGTH]
    if long_ids:
        return (f'item id "{_clip(long_ids[0], 20)}" is longer than {MAX_ITEM_ID_LENGTH} '
                "characters")
    return None


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
