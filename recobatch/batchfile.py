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

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import ijson

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


class BatchFile:
    """A streaming reader of one requests file.

    Parameters
    ----------
    stream : binary file-like
        The file's bytes (``read(n)``; ``readline`` for JSON Lines).
    jsonl : bool
        JSON Lines instead of seed JSON.

    Attributes
    ----------
    job : dict or None
        The file's top-level ``"job"`` object once it has been read.
    job_after_requests : bool
        ``"job"`` came after ``"requests"`` (so it was not known while requests streamed).
    """

    def __init__(self, stream: IO[bytes], jsonl: bool = False) -> None:
        self._stream = stream
        self._jsonl = jsonl
        self.job: dict[str, Any] | None = None
        self.job_after_requests = False

    def requests(self) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, request)`` in file order (requests are not validated here).

        Raises
        ------
        InputError
            Invalid JSON or the wrong shape (seed JSON), or an over-long line (JSON Lines).
        """
        if self._jsonl:
            yield from self._jsonl_requests()
            return
        try:
            items = ijson.items(self._checked_events(), "requests.item")
            yield from enumerate(items)
        except ijson.JSONError as exc:
            raise InputError(f"the requests file is not valid JSON ({_short(exc)}).") from None

    def _checked_events(self) -> Iterator[tuple[str, str, Any]]:
        """Pass ijson events through, checking the top-level shape and collecting ``job``."""
        seen_requests = False
        job_builder: ijson.ObjectBuilder | None = None
        events = ijson.parse(self._stream, use_float=True)
        first = next(events, None)
        if first is None or first[:2] != ("", "start_map"):
            raise InputError('the requests file must be a JSON object {"requests": [...]}.')
        yield first
        for event in events:
            prefix, kind, value = event
            if prefix == "":
                if kind == "map_key":
                    if value == "requests":
                        seen_requests = True
                    elif value == "job":
                        job_builder = ijson.ObjectBuilder()
                        self.job_after_requests = seen_requests
                    else:
                        raise InputError(f'the requests file has an unknown top-level key '
                                         f'"{_clip(value)}" (known: "requests", "job").')
                elif kind == "end_map" and not seen_requests:
                    raise InputError('the requests file has no "requests" list.')
            elif prefix == "requests" and kind not in ("start_array", "end_array"):
                raise InputError('"requests" must be a list of request objects.')
            elif job_builder is not None and (prefix == "job" or prefix.startswith("job.")):
                job_builder.event(kind, value)
                if prefix == "job" and kind not in ("start_map", "map_key", "start_array"):
                    self.job = _job_object(job_builder.value)
                    job_builder = None
            yield event

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
                yield index, json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                yield index, Unparsable(f"not valid JSON ({_short(exc)})")
            index += 1


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
    if api_name == "UserRecommend":
        clean: dict[str, Any] = {"UserId": request["UserId"]}
        if "SeedItems" in request:
            clean["SeedItems"] = request["SeedItems"]
        return clean, None
    return {"SeedItems": request["SeedItems"]}, None


def _problem(request: Any, api_name: str) -> str | None:
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
