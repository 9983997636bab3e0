"""Errors recoservice answers, and the handlers that give every error the v4 body shape.

Every error, ours or FastAPI's, leaves as ``{"error": {"code": "<Code>", "message": "<text>"}}``:

- ``ApiError`` raised anywhere in a route (or dependency) → its status, code and message;
- request validation (FastAPI's 422) → ``400 BadArgument`` with a message naming the field;
- unknown routes → ``404 NotFound``; wrong method → ``405 MethodNotAllowed``;
- anything unexpected → ``500 InternalServerError`` (details go to the log, not the client).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("recoservice")

# Codes for statuses that reach us without an ApiError (Starlette's own 404/405/413 ...).
_CODES = {
    400: "BadArgument",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


class ApiError(Exception):
    """An error answer: HTTP status, stable error code, a sentence saying what is wrong.

    Parameters
    ----------
    status
        HTTP status code.
    code
        Stable error code, e.g. ``BadArgument``, ``ModelNotFound``.
    message
        What is wrong, in plain words (never a key or token).
    headers
        Extra response headers, e.g. ``Retry-After``.
    """

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_body(code: str, message: str) -> dict[str, Any]:
    """The v4 error body."""
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("query", "numberOfResults")`` → ``query parameter 'numberOfResults'``."""
    parts = [str(p) for p in loc]
    if not parts:
        return "request"
    where, rest = parts[0], parts[1:]
    name = ".".join(rest)
    if where == "body":
        return f"body field '{name}'" if name else "request body"
    if where in ("query", "path", "header", "cookie"):
        return f"{where} parameter '{name}'"
    return f"'{'.'.join(parts)}'"


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            problems.append(f"request body is not valid JSON ({err.get('msg', 'invalid')})")
        else:
            problems.append(f"{_field_name(err.get('loc', ()))}: {err.get('msg', 'invalid')}")
    return error_response(400, "BadArgument", "; ".join(problems) or "invalid request")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES.get(exc.status_code, "Error")
    if exc.status_code == 404 and exc.detail in (None, "Not Found"):
        message = f"There is no resource at {request.method} {request.url.path}."
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}."
    else:
        message = str(exc.detail)
    headers = getattr(exc, "headers", None)
    return error_response(exc.status_code, code, message, headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "InternalServerError",
                          f"The service failed to handle the request ({type(exc).__name__}).")


def install_error_handlers(app: FastAPI) -> None:
    """Make every error answer use the v4 error body."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
