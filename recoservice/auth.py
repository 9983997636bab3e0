"""Subscription and admin keys: who may call what.

Every path except the open documentation (``OPEN_PATHS``) needs a valid subscription key in
``Ocp-Apim-Subscription-Key``; ``recoservice.guard.ApiGuard`` checks it for the whole app
before any route runs or any body is read, and leaves the matched key in the request scope.
Routes that need the caller's key (operations and batch jobs belong to a key) take it with the
``require_key`` dependency. The fault routes (``/admin/faults``, mounted only with
``--faults``) also need an admin key in ``Recoservice-Admin-Key`` (``require_admin``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from fastapi import Request

from recoservice.errors import ApiError

KEY_HEADER = "Ocp-Apim-Subscription-Key"
ADMIN_HEADER = "Recoservice-Admin-Key"
# Where ApiGuard leaves the caller's matched subscription key in the ASGI scope.
SCOPE_KEY = "recoservice.key"
# The only paths served without a key: the OpenAPI document and its viewers.
OPEN_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
# Longer header values are never keys (and are not hashed): bounded work per request.
MAX_KEY_CHARS = 256


class KeySet:
    """A set of secret keys, matched in constant time.

    Keys are kept as SHA-256 digests and a given value is hashed once, then compared with
    ``hmac.compare_digest`` against every digest: the time taken says nothing about which key
    or how much of it matched.
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [(hashlib.sha256(k.encode()).digest(), k) for k in keys]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def match(self, given: str | bytes | None) -> str | None:
        """The configured key equal to ``given``, or ``None``."""
        if not given or len(given) > MAX_KEY_CHARS:
            return None
        raw = given.encode("utf-8", "surrogateescape") if isinstance(given, str) else given
        digest = hashlib.sha256(raw).digest()
        found = None
        for stored, key in self._digests:
            if hmac.compare_digest(stored, digest):
                found = key
        return found


def unauthorized(missing: bool, header: str = KEY_HEADER) -> ApiError:
    """The 401 for a missing or wrong key (never echoes what was given)."""
    what = "is missing" if missing else "holds no valid key"
    return ApiError(401, "Unauthorized", f"Access denied: the {header} header {what}.")


def caller_key(request: Request) -> str:
    """The caller's subscription key, as ``ApiGuard`` matched it (401 when none was).

    Raises
    ------
    ApiError
        401 ``Unauthorized`` when no key was matched (the app runs without ``ApiGuard``).
    """
    key = request.scope.get(SCOPE_KEY)
    if not key:
        raise unauthorized(missing=True)
    return str(key)


async def require_key(request: Request) -> str:
    """FastAPI dependency: ``caller_key``. Async so FastAPI runs it inline: a sync dependency
    would cost every request a round trip through the thread pool."""
    return caller_key(request)


async def require_admin(request: Request) -> None:
    """FastAPI dependency of the admin routes: 403 unless ``Recoservice-Admin-Key`` is valid."""
    caller_key(request)
    admin_keys: KeySet = request.app.state.admin_keys
    if admin_keys.match(request.headers.get(ADMIN_HEADER)) is None:
        raise ApiError(403, "Forbidden",
                       f"Admin routes need a valid {ADMIN_HEADER} header as well as a "
                       "subscription key.")
