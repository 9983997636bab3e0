"""Subscription-key check: every route except ``/docs`` and ``/openapi.json`` needs a key."""

from __future__ import annotations

import hmac

from fastapi import Request

from recoservice.errors import ApiError

KEY_HEADER = "Ocp-Apim-Subscription-Key"


def require_key(request: Request) -> str:
    """FastAPI dependency: return the caller's valid subscription key or raise 401.

    Raises
    ------
    ApiError
        401 ``Unauthorized`` when the header is missing or names no configured key.
    """
    given = request.headers.get(KEY_HEADER)
    if not given:
        raise ApiError(401, "Unauthorized",
                       f"Access denied: the {KEY_HEADER} header is missing.")
    keys: list[str] = request.app.state.config.keys
    # Compare against every key in constant time so timing does not reveal a prefix.
    matched = [k for k in keys if hmac.compare_digest(k.encode(), given.encode())]
    if not matched:
        raise ApiError(401, "Unauthorized",
                       f"Access denied: the {KEY_HEADER} header holds no valid key.")
    return matched[0]
