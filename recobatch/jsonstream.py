"""A streaming JSON scanner over bytes: finds values by their brackets, in constant memory.

ijson tracks a path per event (quadratic in depth) and builds every value it is asked for;
both are unbounded on hostile input. This scanner reads a stream in blocks and moves over the
outer structure (one top-level object, the elements of one array) itself; each element is
measured first (bytes, depth, items) and parsed with ``orjson`` only when it is within the
limits of :mod:`recobatch.limits`. An element over its byte or item limit is skipped unread,
still in constant memory, and reported as :class:`Refused`.

The outer structure is checked token by token; an element is checked by ``orjson`` when it
is parsed, and only by its brackets and strings when it is skipped unread. Offsets in errors
are byte offsets in the stream.
"""

from __future__ import annotations

import gc
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

import orjson

from recobatch.limits import MAX_JSON_DEPTH

BLOCK = 1 << 20
WS = b" \t\n\r"
_WS = re.compile(rb"[ \t\n\r]*+")
# Inside a string: anything but a quote or a backslash, or an escape pair.
_STRING = rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"'
_PLAIN = rb'[^\[\]{}"]*+'
_STRUCT = re.compile(rb'["\[\]{}]')
_STRING_STOP = re.compile(rb'["\\]')
_SCALAR = re.compile(rb"[-+.0-9A-Za-z]*+")
_OPEN = b"[{"
_CLOSE = {ord("]"): ord("["), ord("}"): ord("{")}


def nested_pattern(depth: int) -> bytes:
    """Regex source of one array or object nested at most ``depth`` deep (structure only)."""
    value = _STRING
    container = b""
    for _ in range(depth):
        container = rb"[\[{]" + _PLAIN + rb"(?:(?:" + value + rb")" + _PLAIN + rb")*+[\]}]"
        value = _STRING + b"|" + container
    return container


class JsonSyntaxError(ValueError):
    """The stream is not JSON of the expected shape, or breaks a limit.

    Attributes
    ----------
    offset : int
        Byte offset in the stream where the problem is.
    problem : str
        What is wrong, in words (no input text longer than a short excerpt).
    item : int or None
        0-based position of the array element it is in, when inside one.
    """

    def __init__(self, offset: int, problem: str, item: int | None = None) -> None:
        super().__init__(f"{problem} at byte {offset:,}")
        self.offset = offset
        self.problem = problem
        self.item = item


class JsonDepthError(JsonSyntaxError):
    """Nesting deeper than the limit."""


@dataclass(frozen=True)
class Refused:
    """An element skipped unread: over its byte limit, or within it but over its item limit
    (``too_many_items``)."""

    size: int
    items: int
    too_many_items: bool


@dataclass(frozen=True)
class Run:
    """Consecutive elements matched whole by a caller's fast pattern (raw bytes, unparsed)."""

    raw: bytes
    count: int


class JsonStream:
    """Reads JSON from a binary stream in blocks.

    Parameters
    ----------
    stream : binary file-like
        ``read(n)``; read to its end at most once.
    start : int
        Bytes already consumed before the stream's position (e.g. a byte order mark), so
        offsets in errors are offsets in the file.
    """

    def __init__(self, stream: IO[bytes], start: int = 0, data: bytes = b"") -> None:
        self._stream = stream
        self.buf = data
        self.pos = 0
        self.base = start  # file offset of buf[0]
        self.eof = False
        self._keep: int | None = None  # buffer index from which bytes must be kept
        self._start = 0  # file offset of the value being scanned
        self._limits: tuple[int, int | None] = (0, None)

    @property
    def offset(self) -> int:
        """File offset of the next unread byte."""
        return self.base + self.pos

    def fill(self) -> bool:
        """Read one more block into the buffer; False at the end of the stream."""
        if self.eof:
            return False
        data = self._stream.read(BLOCK)
        if not data:
            self.eof = True
            return False
        cut = self.pos if self._keep is None else min(self._keep, self.pos)
        if cut:
            self.buf = self.buf[cut:] + data
            self.base += cut
            self.pos -= cut
            if self._keep is not None:
                self._keep -= cut
        else:
            self.buf += data
        return True

    def ensure(self, count: int) -> None:
        """Read until ``count`` bytes are buffered after ``pos`` (or the stream ends)."""
        while len(self.buf) - self.pos < count and self.fill():
            pass

    def peek(self) -> int | None:
        """Skip whitespace; the next byte (not consumed), or None at the end."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.fill():
                return None

    def error(self, problem: str, item: int | None = None,
              offset: int | None = None) -> JsonSyntaxError:
        """A :class:`JsonSyntaxError` at ``offset`` (default: the next unread byte)."""
        return JsonSyntaxError(self.offset if offset is None else offset, problem, item)

    def expect(self, char: bytes, what: str) -> None:
        """Consume ``char`` after whitespace, or raise naming ``what`` was expected."""
        found = self.peek()
        if found != char[0]:
            raise self.error(f"expected {what}, found {describe(found)}")
        self.pos += 1

    def end(self) -> None:
        """Check that nothing but whitespace follows."""
        found = self.peek()
        if found is not None:
            raise self.error(f"unexpected {describe(found)} after the end of the JSON document")

    def members(self, depth: int = 1, key_limit: int = 1024) -> Iterator[str | None]:
        """Walk an object's members: yield each key (None when over ``key_limit`` bytes).

        The caller consumes each member's value (:meth:`scan`, :meth:`items`, :meth:`skip`)
        before asking for the next key. Raises when the next value is not an object.
        """
        self.expect(b"{", "an object")
        if self.peek() == ord("}"):
            self.pos += 1
            return
        while True:
            if self.peek() != ord('"'):
                raise self.error(f"expected a key (a string), found {describe(self.peek())}")
            start = self.offset
            key = self.scan(key_limit, depth=depth)
            self.expect(b":", "':' after a key")
            try:
                text = orjson.loads(key) if isinstance(key, bytes) else None
            except orjson.JSONDecodeError as exc:
                raise self.error(orjson_problem(exc), offset=start) from None
            yield text
            found = self.peek()
            if found == ord(","):
                self.pos += 1
                continue
            if found == ord("}"):
                self.pos += 1
                return
            raise self.error(f"expected ',' or '}}' after a value, found {describe(found)}")

    def skip(self, depth: int = 0) -> None:
        """Skip the next value, checking its depth, in constant memory."""
        self.scan(0, depth=depth)

    def scan(self, keep_limit: int, item_limit: int | None = None,
             depth: int = 0) -> bytes | Refused:
        """Measure the next value; return its bytes when within the limits, else :class:`Refused`.

        Parameters
        ----------
        keep_limit : int
            Largest value returned (bytes as they stand, whitespace inside included).
        item_limit : int, optional
            Largest number of items (separators + 1) of a value returned.
        depth : int
            Nesting depth of the value's container: the value may nest
            ``MAX_JSON_DEPTH - depth`` more levels.

        Raises
        ------
        JsonDepthError
            As soon as the nesting passes ``MAX_JSON_DEPTH`` (nothing more is read).
        JsonSyntaxError
            The stream ends inside the value, or brackets do not match.
        """
        first = self.peek()
        if first is None:
            raise self.error("the file ends where a value was expected")
        self._start = start = self.offset
        self._limits = (keep_limit, item_limit)
        self._keep = self.pos
        items = 1
        try:
            if first == ord('"'):
                self.pos += 1
                self._skip_string(start)
            elif first in _OPEN:
                items = self._skip_container(depth, start)
            else:
                self._skip_scalar()
                if self.offset == start:
                    raise self.error(f"expected a value, found {describe(first)}")
            size = self.offset - start
            keeping = self._keep is not None and size <= keep_limit and (
                item_limit is None or items <= item_limit)
            if keeping:
                return self.buf[self._keep:self.pos]  # type: ignore[misc]
            # Over both limits, the size is what the message gives.
            return Refused(size, items, size <= keep_limit)
        finally:
            self._keep = None

    def _skip_string(self, start: int) -> None:
        while True:
            match = _STRING_STOP.search(self.buf, self.pos)
            if match is None:
                self.pos = len(self.buf)
                self._release(0)
                if not self.fill():
                    raise self.error("the file ends inside a string", offset=start)
                continue
            if match.group() == b'"':
                self.pos = match.end()
                return
            self.pos = match.start()
            self.ensure(2)
            if len(self.buf) - self.pos < 2:
                raise self.error("the file ends inside a string", offset=start)
            self.pos += 2

    def _skip_scalar(self) -> None:
        while True:
            self.pos = _SCALAR.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return
            self._release(0)
            if not self.fill():
                return

    def _skip_container(self, depth: int, start: int) -> int:
        stack = bytearray()
        items = 1
        while True:
            match = _STRUCT.search(self.buf, self.pos)
            stop = len(self.buf) if match is None else match.start()
            items += self.buf.count(b",", self.pos, stop)
            self.pos = stop
            if match is None:
                self._release(items)
                if not self.fill():
                    kind = "an object" if stack[-1:] == b"{" else "a list"
                    raise self.error(f"the file ends inside {kind} opened at byte {start:,}")
                continue
            char = self.buf[self.pos]
            self.pos += 1
            if char == ord('"'):
                self._skip_string(self.offset - 1)
            elif char in _OPEN:
                stack.append(char)
                if depth + len(stack) > MAX_JSON_DEPTH:
                    raise JsonDepthError(self.offset - 1, f"nesting deeper than "
                                         f"{MAX_JSON_DEPTH} levels (the limit)")
            else:
                if stack[-1] != _CLOSE[char]:
                    raise self.error(f"'{chr(char)}' closes a "
                                     f"{'list' if stack[-1] == ord('[') else 'object'}",
                                     offset=self.offset - 1)
                stack.pop()
                if not stack:
                    return items

    def _release(self, items: int) -> None:
        """Stop keeping the value's bytes once it is over a limit (memory stays constant)."""
        keep_limit, item_limit = self._limits
        if self._keep is not None and (self.offset - self._start > keep_limit or (
                item_limit is not None and items > item_limit)):
            self._keep = None

    def _bulk(self, marker: bytes, depth: int, keep_limit: int) -> list[Any] | None:
        """The elements from ``pos`` up to the last ``marker`` in the next block, parsed in
        one ``orjson`` call; ``None`` (nothing consumed) when that is not possible.

        The elements end at a ``,`` that only whitespace separates from ``marker`` (where an
        element is guessed to start). The guess is checked, not trusted: ``[`` + the bytes +
        ``]`` must be valid JSON, which it is only when the bytes are whole elements (a cut
        inside a string or a nested value leaves a string or a bracket open), and their
        nesting must be within the limit (:func:`nesting_within`). The bytes are at most
        ``keep_limit`` long, so no element in them is over it. Elements are exactly those the
        one-by-one walk yields (``tests/recobatch/test_output_blocks.py``).
        """
        self.ensure(BLOCK)
        end = min(len(self.buf), self.pos + min(BLOCK, keep_limit))
        cut = self.buf.rfind(marker, self.pos + 1, end)
        if cut < 0:
            return None
        stop = self.buf.rfind(b",", self.pos, cut)
        if stop <= self.pos or self.buf[stop + 1:cut].strip(WS):
            return None
        try:
            with gc_paused():
                values = orjson.loads(b"[" + self.buf[self.pos:stop] + b"]")
        except orjson.JSONDecodeError:
            return None
        if not values or not nesting_within(values, MAX_JSON_DEPTH - depth):
            return None
        self.pos = stop
        return values  # type: ignore[no-any-return]

    def items(self, depth: int, keep_limit: int, item_limit: int | None,
              element: re.Pattern[bytes], window: int,
              run: tuple[re.Pattern[bytes], Callable[[bytes], int]] | None = None,
              bulk: bytes | None = None) -> Iterator[Any]:
        """Walk an array's elements, yielding each parsed, or as a :class:`Refused`.

        Parameters
        ----------
        depth : int
            Depth of the array itself (1 for a list at the top of an object).
        keep_limit, item_limit : int
            Limits of one element (see :meth:`scan`); larger ones are :class:`Refused`.
        element : compiled pattern
            Matches an element nested shallow enough to be parsed at once (see
            :func:`nested_pattern`); tried within ``window`` bytes, else the element is
            scanned first.
        run : (compiled pattern, count function), optional
            The pattern matches several consecutive elements (separated by commas) that the
            caller handles on bytes; yielded as one :class:`Run`, unparsed, with the number
            of elements the function counts in it.
        bulk : bytes, optional
            How an element usually starts (e.g. ``{"request"``): where possible, the
            elements of a block are parsed in one call (:meth:`_bulk`); only with no
            ``item_limit``. The elements yielded are the same.

        Raises
        ------
        JsonSyntaxError
            With ``item`` set to the element's position, when it is inside one.
        """
        self.expect(b"[", "a list")
        if self.peek() == ord("]"):
            self.pos += 1
            return
        index = 0
        while True:
            if bulk is not None and item_limit is None:
                self.peek()
                values = self._bulk(bulk, depth, keep_limit)
                if values is not None:
                    index += len(values)
                    yield from values
                    found = self.peek()  # the "," the bulk stopped at
                    self.pos += 1
                    continue
            self.ensure(window)
            self.peek()
            end = min(len(self.buf), self.pos + window)
            fast = run[0].match(self.buf, self.pos, end) if run is not None else None
            if fast is not None and fast.end() > self.pos:
                raw = self.buf[self.pos:fast.end()]
                self.pos = fast.end()
                count = run[1](raw)  # type: ignore[index]
                index += count
                yield Run(raw, count)
            else:
                start = self.offset
                match = element.match(self.buf, self.pos, end)
                try:
                    if match is not None:
                        raw = self.buf[self.pos:match.end()]
                        self.pos = match.end()
                    else:
                        got = self.scan(keep_limit, item_limit, depth)
                        if isinstance(got, Refused):
                            index += 1
                            yield got
                            raw = b""
                        else:
                            raw = got
                except JsonSyntaxError as exc:
                    exc.item = index
                    raise
                if raw:
                    try:
                        value = orjson.loads(raw)
                    except orjson.JSONDecodeError as exc:
                        raise JsonSyntaxError(start + byte_position(raw, exc.pos),
                                              orjson_problem(exc), index) from None
                    index += 1
                    yield value
            found = self.peek()
            if found == ord(","):
                self.pos += 1
                continue
            if found == ord("]"):
                self.pos += 1
                return
            raise self.error(f"expected ',' or ']' after a list element, found "
                             f"{describe(found)}", item=index)


def nesting_within(values: list[Any], limit: int) -> bool:
    """True when no element of ``values`` nests deeper than ``limit`` (e.g. ``[{}]`` is 2).

    Cautious: it answers False for an element whose deepest container is non-empty and at
    exactly ``limit`` (the caller then walks the elements one by one, which decides exactly).
    orjson indents each line of its indented form 2 spaces per enclosing container, and a
    string never holds a raw newline: within the list ``values``, a container at depth ``d``
    starts on a line indented ``2 * d`` and the lines inside a non-empty one are indented
    ``2 * (d + 1)``. So when no line is indented ``2 * (limit + 1)``, no container is deeper
    than ``limit``.
    """
    indented = orjson.dumps(values, option=orjson.OPT_INDENT_2)
    return indented.find(b"\n" + b" " * (2 * (limit + 1))) < 0


_gc_lock = threading.Lock()
_gc_users = 0
_gc_was_enabled = True


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a block of elements is built at once.

    A parsed block holds tens of thousands of new lists and dicts (no cycles): with the
    collector on, they make it run over and over as they are created, which cost ~3 times
    the parse. A counter keeps it paused until the last concurrent user is done (gc state is
    global to the process), then restores what the first one found.
    """
    global _gc_users, _gc_was_enabled
    with _gc_lock:
        if _gc_users == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0 and _gc_was_enabled:
                gc.enable()


def byte_position(raw: bytes, char_position: int) -> int:
    """Byte offset in ``raw`` of orjson's character position (clamped)."""
    return len(raw[: char_position * 4].decode("utf-8", "replace")[:char_position].encode())


def orjson_problem(exc: orjson.JSONDecodeError) -> str:
    """orjson's message without its line/column suffix (the caller gives the byte offset)."""
    text = str(exc.msg if hasattr(exc, "msg") else exc)
    return re.sub(r": line \d+ column \d+ \(char \d+\)$", "", text)


def describe(byte: int | None) -> str:
    """A byte, for an error message: ``'x'``, or ``the end of the file``."""
    if byte is None:
        return "the end of the file"
    if 0x21 <= byte < 0x7F:
        return f"'{chr(byte)}'"
    return f"byte 0x{byte:02X}"
