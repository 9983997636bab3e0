"""Query parameters of the hot routes, read by hand.

FastAPI's per-parameter validation (path parameters included) costs more than scoring one
request does, so ``recommend/item`` reads its parameters here instead. Same rules and the same 400
``BadArgument`` naming the parameter as elsewhere; ``openapi(...)`` documents them.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.datastructures import QueryParams

from recoservice.errors import ApiError

_TRUE = frozenset({"true", "1", "yes", "on", "t", "y"})
_FALSE = frozenset({"false", "0", "no", "off", "f", "n"})


def _bad(name: str, what: str) -> ApiError:
    return ApiError(400, "BadArgument", f"query parameter '{name}': {what}.")


def text(query: QueryParams, name: str, required: bool = False) -> str | None:
    """A string parameter (``None`` when absent and not required)."""
    value = query.get(name)
    if value is None or value == "":
        if required:
            raise _bad(name, "is required")
        return None
    return value


def integer(query: QueryParams, name: str, default: int | None,
            low: int | None = None, high: int | None = None) -> int | None:
    """An integer parameter within ``[low, high]``."""
    value = query.get(name)
    if value is None:
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise _bad(name, "must be an integer") from None
    if (low is not None and number < low) or (high is not None and number > high):
        raise _bad(name, f"must be an integer from {low} to {high}")
    return number


def number(query: QueryParams, name: str, default: float) -> float:
    """A finite number."""
    value = query.get(name)
    if value is None:
        return default
    try:
        result = float(value)
    except ValueError:
        raise _bad(name, "must be a number") from None
    if not math.isfinite(result):
        raise _bad(name, "must be a finite number")
    return result


def boolean(query: QueryParams, name: str, default: bool) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off), any case."""
    value = query.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _bad(name, "must be true or false")


def openapi(*params: tuple[str, str, bool, str], path: tuple[str, ...] = ()) -> dict[str, Any]:
    """``openapi_extra`` documenting hand-read parameters: query ones as (name, type,
    required, text), and the names of string ``path`` parameters."""
    return {"parameters": [{"name": name, "in": "path", "required": True,
                            "schema": {"type": "string"}} for name in path]
            + [{"name": name, "in": "query", "required": required,
                "schema": {"type": kind}, "description": doc}
               for name, kind, required, doc in params]}
