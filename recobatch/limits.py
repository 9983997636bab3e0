"""Limits on untrusted JSON, written down in one place.

Every parser of outside input (the requests file, the ``"job"`` object, HTTP bodies, the chunk
outputs the upstream writes) refuses past these limits in constant memory, with a message that
says where. Messages built from outside text are bounded by :func:`bounded`.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import orjson

from recobatch.errors import InputError

# Deepest nesting of arrays/objects accepted anywhere (a request is 3 deep; the job object 2).
MAX_JSON_DEPTH = 32
# Longest error message built from outside text; at most this many keys are named in one.
MAX_MESSAGE_CHARS = 300
MAX_KEYS_LISTED = 5
# Largest HTTP request body accepted (refused with 413 before it is parsed). Inline requests
# bigger than this go to the input container as a file, started with {"input": {"blob": ...}}.
MAX_HTTP_BODY_BYTES = 16 * 1024 * 1024
# Longest blob name (the Blob service's own limit).
MAX_BLOB_NAME_CHARS = 1024
# Items (list elements and object members, counted by their separators) of one request:
# more are rejected unread. A request a few levels deep and this many items within
# PARSE_WINDOW bytes cannot exist, so where a request is parsed never changes the verdict.
MAX_REQUEST_ITEMS = 100_000
# Values up to this size are parsed at once (orjson); larger ones are measured first, in
# constant memory, then parsed or refused. Bounds what one value can cost when built.
PARSE_WINDOW = 128 * 1024
# The "job" object of a requests file (six settings fit in 300 bytes).
MAX_JOB_BYTES = 64 * 1024
# One result of a chunk output written by the upstream (100 recommendations with metadata
# fit easily); a larger one makes the output invalid.
MAX_RESULT_BYTES = 4 * 1024 * 1024


def bounded(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` cut to ``limit`` characters (with an ellipsis when cut)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# SAS query parameters, also percent-encoded once or twice (``sig%3D``, ``sig%253D``, as in a
# URL carried inside another URL) and after an encoded ``?`` or ``&`` (``%3Fsig%3D``).
_SAS_PARAM = re.compile(
    r"(?:(?<![A-Za-z0-9_%])|(?<=%3[Ff])|(?<=%26)|(?<=%253[Ff])|(?<=%2526))"
    r"(sig|se|st|sv|sp|sr|spr|skoid|sktid|skt|ske|sks|skv)(=|%3[Dd]|%253[Dd])[^&\s\"'<>]+",
    re.IGNORECASE)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove the given secrets (also percent-encoded) and SAS query parameters from ``text``.

    Always redact the whole text before cutting it (:func:`safe_text`): a secret cut in two
    no longer matches, and its first part would leak.
    """
    for secret in secrets:
        if secret:
            for form in {secret, quote(secret, safe="")}:
                text = text.replace(form, "***")
    return _SAS_PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)


def safe_text(text: str, limit: int = MAX_MESSAGE_CHARS, secrets: tuple[str, ...] = ()) -> str:
    """``text`` redacted (:func:`redact`), then bounded to ``limit`` characters."""
    return bounded(redact(text, secrets), limit)


def keys_listed(keys: Any, limit: int = MAX_KEYS_LISTED, total: int | None = None) -> str:
    """At most ``limit`` keys, each clipped, as ``'a', 'b' and 3 more``.

    ``total`` is the number of keys when ``keys`` holds only the first few of them.
    """
    keys = list(keys)
    total = len(keys) if total is None else total
    shown = ", ".join(repr(bounded(str(k), 40)) for k in keys[:limit])
    more = total - min(limit, len(keys))
    return shown + (f" and {more:,} more" if more > 0 else "")


def value_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, ``[]`` is 1), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        depth += 1
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in item if isinstance(child, (dict, list)))
    return deepest


def loads_bounded(data: bytes | str, where: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a small JSON document (already size-capped by the caller) within the depth limit.

    orjson parses iteratively and stops at depth 1024 by itself, so a deep document costs
    neither stack nor memory; NaN and Infinity are not JSON and are refused by it.

    Raises
    ------
    InputError
        Naming ``where``, the depth or the parse problem (bounded text).
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):
            raise InputError(f"{where} is nested deeper than {max_depth} levels") from None
        raise InputError(bounded(f"{where} is not valid JSON: {exc}")) from None
    depth = value_depth(value)
    if depth > max_depth:
        raise InputError(f"{where} is nested {depth} levels deep; the limit is {max_depth}")
    return value
