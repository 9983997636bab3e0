"""Requests files: the two input formats, streamed in one pass, and per-request validation.

Formats (chosen by the blob name's extension):

- seed JSON (any name but ``.jsonl``/``.ndjson``): ``{"requests": [{...}, ...], "job": {...}}``,
  the v4 batch input format plus optional job overrides (validated, then stripped);
- JSON Lines (``.jsonl``, ``.ndjson``): one request object per line, blank lines ignored.

UTF-8 only, with or without a byte order mark (RFC 8259); UTF-16 and UTF-32 are named and
refused. Files are read once, in blocks, by :mod:`recobatch.jsonstream`: memory does not grow
with the file. A request is numbered by its 0-based position (as the service numbers its error
lines), and a rejected request's message names it: ``request 17: SeedItems must be ...``.

Limits (all refused in constant memory, see :mod:`recobatch.limits`): nesting deeper than
``MAX_JSON_DEPTH`` anywhere fails the file; a request over the chunk's byte size, or with more
than ``MAX_REQUEST_ITEMS`` items, is rejected unread; the ``"job"`` object is at most
``MAX_JOB_BYTES``; a JSON Lines line at most ``MAX_LINE_BYTES``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson

from recobatch.errors import InputError, InputTooLargeError
from recobatch.jsonstream import (
    JsonDepthError,
    JsonStream,
    JsonSyntaxError,
    Refused,
    Run,
    describe,
    nested_pattern,
)
from recobatch.limits import (
    MAX_JOB_BYTES,
    MAX_JSON_DEPTH,
    MAX_KEYS_LISTED,
    MAX_REQUEST_ITEMS,
    PARSE_WINDOW,
    bounded,
    keys_listed,
    loads_bounded,
)

JSONL_EXTENSIONS = (".jsonl", ".ndjson")
MAX_ITEM_ID_LENGTH = 50  # the v4 catalog's item id limit
MAX_USER_ID_LENGTH = 255
# A JSON Lines line longer than this cannot be one sane request; stops a newline-less file
# from being read into memory whole.
MAX_LINE_BYTES = 1_048_576
ITEM_KEYS = ("SeedItems",)
USER_KEYS = ("UserId", "SeedItems")
UTF8_BOM = b"\xef\xbb\xbf"
FILE = "the requests file"

# One request, nested at most 2 deep ({"SeedItems": [...]}): parsed at once with orjson.
_REQUEST = re.compile(nested_pattern(2))
# Requests valid for ItemRecommend exactly as they stand, and whose compact form is what
# orjson writes for them: {"SeedItems": ["id", ...]} with 1 to MAX_REQUEST_ITEMS ids of 1 to
# 50 printable ASCII characters, none of them space, quote, backslash, comma or bracket. A run
# of them is checked, compacted and split into chunks on bytes, without building objects.
_W = rb"[ \t\n\r]*+"
_ID = rb'"[\x21\x23-\x2b\x2d-\x5a\x5e-\x7a\x7c\x7e]{1,%d}+"' % MAX_ITEM_ID_LENGTH
_ITEM_REQUEST = (rb'\{' + _W + rb'"SeedItems"' + _W + b":" + _W + rb"\[" + _W + _ID
                 + rb"(?:" + _W + b"," + _W + _ID + rb"){0,%d}+" % (MAX_REQUEST_ITEMS - 1)
                 + _W + rb"\]" + _W + rb"\}")
ITEM_RUN = re.compile(_W + _ITEM_REQUEST + rb"(?:" + _W + b"," + _W + _ITEM_REQUEST + rb")*+"
                      + _W)
_WHITESPACE = b" \t\n\r"
_VALUE_START = re.compile(rb'[\["\-0-9]|true|false|null')


def is_jsonl(name: str) -> bool:
    """True when the blob name says JSON Lines."""
    return name.lower().endswith(JSONL_EXTENSIONS)


def check_size(size: int, max_bytes: int) -> None:
    """Raise :class:`InputTooLargeError` when a requests file is over the limit."""
    if size > max_bytes:
        raise InputTooLargeError(
            f"the requests file is {size:,} bytes, over the {max_bytes:,}-byte limit "
            "(BATCH_MAX_INPUT_BYTES).")


_WIDE = ((b"\x00\x00\xfe\xff", "UTF-32 (big-endian, with a byte order mark)"),
         (b"\xff\xfe\x00\x00", "UTF-32 (little-endian, with a byte order mark)"),
         (b"\xfe\xff", "UTF-16 (big-endian, with a byte order mark)"),
         (b"\xff\xfe", "UTF-16 (little-endian, with a byte order mark)"))


def check_encoding(head: bytes) -> int:
    """Check a file's first bytes; return the length of a UTF-8 byte order mark (0 or 3).

    RFC 8259: JSON exchanged between systems is UTF-8; a parser may ignore a leading byte
    order mark. UTF-16 and UTF-32 are recognised by their mark or, without one, by the zero
    bytes an ASCII first character leaves (RFC 4627, section 3).

    Raises
    ------
    InputError
        Naming the encoding found.
    """
    if head.startswith(UTF8_BOM):
        return 3
    found = next((name for mark, name in _WIDE if head.startswith(mark)), None)
    if found is None and len(head) >= 4:
        zeros = (head[0] == 0, head[1] == 0, head[2] == 0, head[3] == 0)
        found = {(True, True, True, False): "UTF-32 (big-endian)",
                 (False, True, True, True): "UTF-32 (little-endian)",
                 (True, False, True, False): "UTF-16 (big-endian)",
                 (False, True, False, True): "UTF-16 (little-endian)"}.get(zeros)
    if found is None and len(head) >= 2 and (head[0] == 0) != (head[1] == 0):
        found = "UTF-16"
    if found is not None:
        raise InputError(f"{FILE} is encoded as {found}; save it as UTF-8.")
    return 0


@dataclass(frozen=True)
class Unparsable:
    """A request refused before it was parsed: not JSON, too large, or too many items."""

    problem: str


def refused_problem(refused: Refused, max_request_bytes: int) -> str:
    """The rejection of a request skipped unread (the text follows ``request <i>: ``)."""
    if refused.too_many_items:
        return f"holds more than {MAX_REQUEST_ITEMS:,} items (the limit per request)"
    return f"is larger than one batch job input ({max_request_bytes:,} bytes)"


def invalid_json(exc: JsonSyntaxError, first_index: int = 0, where: str = FILE) -> InputError:
    """The :class:`InputError` of a scan failure, saying where (byte, request) and what."""
    request = f" (request {first_index + exc.item})" if exc.item is not None else ""
    if isinstance(exc, JsonDepthError):
        return InputError(f"{where} is nested deeper than {MAX_JSON_DEPTH} levels (the limit) "
                          f"at byte {exc.offset:,}{request}.")
    return InputError(bounded(f"{where} is not valid JSON at byte {exc.offset:,}{request}: "
                              f"{exc.problem}."))


class SeedFile:
    """One pass over a seed JSON file: the requests in order, the ``"job"`` where it sits.

    Parameters
    ----------
    stream : binary file-like
        The file's bytes (``read(n)``), read once.
    max_request_bytes : int
        A request over this size (and over ``PARSE_WINDOW``) is rejected unread.
    on_job : callable
        Called with the file's ``"job"`` object (validated JSON object) when it is reached;
        may raise to stop the pass.
    item_runs : bool
        Let requests valid for ItemRecommend as they stand come as :class:`Run` s (bytes).
        Read when the ``"requests"`` list is reached, so ``on_job`` may change it.
    """

    def __init__(self, stream: IO[bytes], max_request_bytes: int,
                 on_job: Callable[[dict[str, Any]], None], item_runs: bool = False) -> None:
        self._stream = stream
        self._max_request_bytes = max_request_bytes
        self._on_job = on_job
        self.item_runs = item_runs
        self.count = 0  # requests seen so far
        self._keys: list[str] = []
        self._key_count = 0
        self._found_list = False
        self._list_start = 0  # index of the first request of the list being read
        self._jobs = 0

    def requests(self) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, request)`` in file order; a :class:`Run` holds ``count`` requests.

        A request may be a parsed value, :class:`Unparsable` or :class:`Run` (not validated
        here). Raises :class:`InputError` for an unusable file, saying where and what.
        """
        head = self._stream.read(4)
        skip = check_encoding(head)
        scan = JsonStream(self._stream, skip, head[skip:])
        first = scan.peek()
        if first is None:
            raise InputError(f"{FILE} is empty.")
        scan.ensure(5)
        if first != ord("{") and not _VALUE_START.match(scan.buf, scan.pos):
            raise InputError(f"{FILE} is not valid JSON at byte {scan.offset:,}: it starts "
                             f"with {describe(first)}, which begins no JSON value.")
        if first != ord("{"):
            raise InputError(f'{FILE} must be a JSON object {{"requests": [...]}} (it starts '
                             f"with {describe(first)}).")
        try:
            for key in scan.members():
                self._key_count += 1
                if len(self._keys) < MAX_KEYS_LISTED:
                    self._keys.append(key if key is not None else "<a very long key>")
                if key == "requests":
                    yield from self._requests(scan)
                elif key == "job":
                    self._job(scan)
                else:
                    scan.skip(depth=1)
            scan.end()
        except JsonSyntaxError as exc:
            raise invalid_json(exc, self._list_start) from None

    def no_requests(self) -> str:
        """Why the pass gave no request (after :meth:`requests` ended)."""
        if self._found_list:
            return f"{FILE} holds no requests."
        found = f" (found {keys_listed(self._keys, total=self._key_count)})" \
            if self._keys else ""
        return f'{FILE} has no "requests" list{found}.'

    def _requests(self, scan: JsonStream) -> Iterator[tuple[int, Any]]:
        found = scan.peek()
        if found != ord("["):
            raise InputError(f'"requests" must be a list of request objects (found '
                             f"{describe(found)} at byte {scan.offset:,}).")
        self._found_list = True
        self._list_start = self.count
        keep = max(self._max_request_bytes, PARSE_WINDOW)
        run = (ITEM_RUN, _count_run) if self.item_runs else None
        for value in scan.items(2, keep, MAX_REQUEST_ITEMS, _REQUEST, PARSE_WINDOW, run):
            if isinstance(value, Refused):
                value = Unparsable(refused_problem(value, self._max_request_bytes))
            yield self.count, value
            self.count += value.count if isinstance(value, Run) else 1

    def _job(self, scan: JsonStream) -> None:
        start = scan.offset
        raw = scan.scan(MAX_JOB_BYTES, depth=1)
        self._jobs += 1
        if self._jobs > 1:
            raise InputError(f'{FILE} has more than one "job" (the second at byte {start:,}).')
        if isinstance(raw, Refused):
            raise InputError(f'{FILE}\'s "job" is {raw.size:,} bytes, over the '
                             f"{MAX_JOB_BYTES:,}-byte limit.")
        job = loads_bounded(raw, f'{FILE}\'s "job" (at byte {start:,})', MAX_JSON_DEPTH - 1)
        if not isinstance(job, dict):
            raise InputError(f'{FILE}\'s "job" must be a JSON object (at byte {start:,}).')
        self._on_job(job)


def _count_run(raw: bytes) -> int:
    return raw.count(b"}")  # ids hold no brace: one per request


def compact_run(raw: bytes) -> tuple[bytes, int]:
    """A :class:`Run`'s requests as orjson writes them, comma-joined, and the largest size."""
    compact = raw.translate(None, _WHITESPACE)
    return compact, max(map(len, compact.split(b"},"))) + 1


def jsonl_requests(stream: IO[bytes], max_request_bytes: int) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, request)`` of a JSON Lines file (a non-JSON line is :class:`Unparsable`).

    Raises
    ------
    InputError
        An over-long line, a line nested too deep, or a UTF-16/32 file.
    """
    index = 0
    first = True
    offset = 0
    keep = max(max_request_bytes, PARSE_WINDOW)
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            raise InputError(f"request {index} (at byte {offset:,}): the line is longer than "
                             f"{MAX_LINE_BYTES:,} bytes.")
        start = offset
        offset += len(line)
        if first:
            skip = check_encoding(line[:4])
            line = line[skip:]
            start += skip
        first = False
        if not line.strip():
            continue
        value: Any = None
        if len(line) > PARSE_WINDOW or _REQUEST.fullmatch(line.strip(_WHITESPACE)) is None:
            try:
                got = JsonStream(io.BytesIO(), start, line).scan(keep, MAX_REQUEST_ITEMS)
            except JsonDepthError as exc:
                raise InputError(f"{FILE} is nested deeper than {MAX_JSON_DEPTH} levels (the "
                                 f"limit) at byte {exc.offset:,} (request {index}).") from None
            except JsonSyntaxError:
                got = b""  # orjson below says what is wrong, as before
            if isinstance(got, Refused):
                value = Unparsable(refused_problem(got, max_request_bytes))
        if value is None:
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                value = Unparsable(f"not valid JSON ({_short(exc)})")
        yield index, value
        index += 1


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
