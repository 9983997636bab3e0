"""``ApiGuard``: the one gate every request passes before any route runs.

A pure ASGI middleware, outermost in the app, so nothing of a request is acted on before it:

1. **Key.** Every path except ``auth.OPEN_PATHS`` needs a valid ``Ocp-Apim-Subscription-Key``;
   without one the answer is ``401`` at once: no route, no fault rule, not one byte of the
   body read. The matched key goes into the scope for ``auth.require_key``.
2. **Body size.** Each request has a body cap (``body_limit``): catalog and usage uploads
   their own (``--max-catalog-mb``, ``--max-usage-mb``), every other route
   ``MAX_JSON_BODY_BYTES``. A ``Content-Length`` over the cap is ``413`` before reading; a
   body without one (chunked) is counted while the app reads it and stops with ``413`` as
   soon as it passes the cap, so memory stays bounded either way.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from starlette.exceptions import HTTPException

from recoservice import API_PREFIX
from recoservice.auth import KEY_HEADER, OPEN_PATHS, SCOPE_KEY, KeySet
from recoservice.errors import error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# JSON bodies (models, builds, batch jobs, fault rules) are small: a batch job body is ~1 KB.
MAX_JSON_BODY_BYTES = 1_048_576
_KEY_HEADER = KEY_HEADER.lower().encode("latin-1")
_UPLOAD = re.compile(re.escape(API_PREFIX) + r"/models/[^/]+/(catalog|usage)/?")


class BodyTooLargeError(HTTPException):
    """The body passed its cap while being read (a 413 wherever it surfaces)."""

    def __init__(self, limit: int, what: str) -> None:
        super().__init__(413, f"The {what} is larger than the limit of {limit:,} bytes.")


class ApiGuard:
    """Authenticate, then cap the body, for every request of ``app`` (see module docstring).

    Parameters
    ----------
    app
        The ASGI app to guard.
    keys
        Valid subscription keys.
    upload_limits
        Body cap of ``POST .../models/{id}/catalog`` and ``.../usage`` by kind.
    json_limit
        Body cap of every other request.
    """

    def __init__(self, app: ASGIApp, keys: KeySet, upload_limits: dict[str, int],
                 json_limit: int = MAX_JSON_BODY_BYTES) -> None:
        self.app = app
        self.keys = keys
        self.upload_limits = upload_limits
        self.json_limit = json_limit

    def body_limit(self, method: str, path: str) -> tuple[int, str]:
        """(cap in bytes, what the body is) for a request."""
        if method == "POST":
            upload = _UPLOAD.fullmatch(path)
            if upload:
                kind = upload.group(1)
                return self.upload_limits[kind], f"{kind} file"
        return self.json_limit, "request body"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given, declared, chunked = None, None, False
        for name, value in scope["headers"]:
            if name == _KEY_HEADER:
                given = value
            elif name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = True
        # Refusing a request whose body is still on its way: close the connection after the
        # answer, or the server would go on reading (and discarding) all of it.
        pending = chunked or (declared is not None and declared not in (b"0", b""))
        key = self.keys.match(given)
        if key is None:
            what = "is missing" if not given else "holds no valid key"
            await _answer(send, 401, "Unauthorized",
                          f"Access denied: the {KEY_HEADER} header {what}.", close=pending)
            return
        scope[SCOPE_KEY] = key
        limit, what = self.body_limit(scope["method"], scope["path"])
        if declared is not None:
            if not declared.isdigit():
                await _answer(send, 400, "BadArgument", "Content-Length is not a number.",
                              close=True)
                return
            if int(declared) > limit:
                too_big = BodyTooLargeError(limit, what)
                await _answer(send, 413, "PayloadTooLarge", str(too_big.detail), close=True)
                return
        await self._run_capped(scope, receive, send, limit, what)

    async def _run_capped(self, scope: Scope, receive: Receive, send: Send, limit: int,
                          what: str) -> None:
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit, what)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLargeError as exc:
            # Routes turn it into a 413 themselves; this covers one that let it through.
            if started:
                raise
            await _answer(send, 413, "PayloadTooLarge", str(exc.detail), close=True)


async def _answer(send: Send, status: int, code: str, message: str,
                  close: bool = False) -> None:
    body = orjson.dumps(error_body(code, message))
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
