"""Requests files: the two input formats, streamed, and per-request validation.

Formats (chosen by the blob name's extension):

- seed JSON (any name but ``.jsonl``/``.ndjson``): ``{"requests": [{...}, ...], "job": {...}}``,
  the v4 batch input format plus optional job overrides (validated, then stripped);
- JSON Lines (``.jsonl``, ``.ndjson``): one request object per line, blank lines ignored.

Files are streamed with ``ijson`` (C backend when available): memory does not grow with the
file. A request is numbered by its 0-based position (as the service numbers its error lines),
and a rejected request's message names it: ``request 17: SeedItems must be ...``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import ijson
import orjson

from recobatch.errors import InputError, InputTooLargeError

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
