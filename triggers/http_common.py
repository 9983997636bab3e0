"""Shared pieces of the HTTP API: JSON answers, error bodies, the POST body's validation.

Errors answer ``{"error": {"code": ..., "message": ...}}``; a message names the field at fault
(``input.requests[3] must be a JSON object``) and never echoes keys or tokens.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func

from recobatch import naming
from recobatch.errors import ConfigurationError, InputError
from recobatch.limits import MAX_HTTP_BODY_BYTES, bounded, keys_listed, loads_bounded
from recobatch.settings import Settings, get_settings

log = logging.getLogger(__name__)
INSTANCE_ID_RE = re.compile(r"^rb-[0-9a-f]{32}$")


class HttpError(Exception):
    """An answer other than success, raised anywhere in a handler and turned into JSON."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> func.HttpResponse:
        return json_response({"error": {"code": self.code, "message": self.message}},
                             self.status)


def bad_request(message: str) -> HttpError:
    return HttpError(400, "BadRequest", message)


def json_response(body: Any, status: int = 200,
                  headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status,
                             headers=headers, mimetype="application/json")


def settings_or_error() -> Settings:
    """The app settings, or a 500 naming the missing/invalid setting (and logged)."""
    try:
        return get_settings()
    except ConfigurationError as exc:
        log.error("configuration error: %s", exc.message)
        raise HttpError(500, exc.code, exc.message) from None


def custom_status_of(status: Any) -> dict:
    """A run's custom status (``DurableOrchestrationStatus``) as a dict; hosts may hand it
    over as a JSON string."""
    custom_status = getattr(status, "custom_status", None)
    if isinstance(custom_status, str):
        try:
            custom_status = json.loads(custom_status)
        except ValueError:
            return {}
    return custom_status if isinstance(custom_status, dict) else {}


def instance_id_of(req: func.HttpRequest) -> str:
    """The ``{id}`` route parameter; ids we never issue are unknown (404)."""
    instance_id = (req.route_params or {}).get("id", "")
    if not INSTANCE_ID_RE.match(instance_id):
        raise HttpError(404, "NotFound", f"no batch run with id {instance_id[:80]!r}.")
    return instance_id


@dataclass(frozen=True)
class BatchRequest:
    """A validated ``POST /api/batches`` body: exactly one of ``blob`` or ``requests``."""

    blob: str | None = None
    requests: list[dict] | None = None
    job: dict = field(default_factory=dict)


def parse_batch_request(req: func.HttpRequest) -> BatchRequest:
    """Validate the body ``{"input": {"blob": name} | {"requests": [...]}, "job": {...}}``.

    Limits (:mod:`recobatch.limits`): at most ``MAX_HTTP_BODY_BYTES`` (413, checked before
    parsing), nesting at most ``MAX_JSON_DEPTH`` deep, no NaN/Infinity, canonical blob names
    (:func:`recobatch.naming.blob_name_problem`); unknown keys are named, at most five, clipped.

    Raises
    ------
    HttpError
        400 naming the field at fault; 413 for a body over the limit.
    """
    data = req.get_body() or b""
    if len(data) > MAX_HTTP_BODY_BYTES:
        raise HttpError(413, "BodyTooLarge", f"the body is {len(data):,} bytes, over the "
                        f"{MAX_HTTP_BODY_BYTES:,}-byte limit; upload larger inputs to the input "
                        'container and post {"input": {"blob": "<name>"}}.')
    try:
        body = loads_bounded(data or b"null", "the body")
    except InputError as exc:
        raise bad_request(exc.message + ".") from None
    if not isinstance(body, dict):
        raise bad_request('the body must be a JSON object: {"input": {"blob": "<name>"} or '
                          '{"input": {"requests": [...]}}, optionally "job": {...}.')
    _no_unknown(body, ("input", "job"), "")
    job = body.get("job", {})
    if job is None:
        job = {}
    if not isinstance(job, dict):
        raise bad_request("job must be a JSON object of job settings.")
    source = body.get("input")
    if not isinstance(source, dict):
        raise bad_request('input is required: {"blob": "<name>"} or {"requests": [...]}.')
    _no_unknown(source, ("blob", "requests"), "input.")
    if set(source) == {"blob"}:
        return BatchRequest(blob=_blob_name(source["blob"]), job=job)
    if set(source) == {"requests"}:
        return BatchRequest(requests=_requests(source["requests"]), job=job)
    raise bad_request("input must have exactly one of blob or requests.")


def _no_unknown(obj: dict, known: tuple[str, ...], where: str) -> None:
    unknown = [key for key in obj if key not in known]
    if unknown:
        noun = "field" if len(unknown) == 1 else "fields"
        raise bad_request(bounded(f"unknown {where}{noun} {keys_listed(unknown)} "
                                  f"(known: {', '.join(known)})."))


def _blob_name(value: Any) -> str:
    problem = naming.blob_name_problem(value)
    if problem:
        raise bad_request(f"input.blob {problem}; give the blob's name in the input container "
                          "as stored (e.g. folder/requests.json).")
    return str(value)


def _requests(value: Any) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise bad_request("input.requests must be a non-empty JSON array of requests.")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise bad_request(f"input.requests[{index}] must be a JSON object.")
    return value
