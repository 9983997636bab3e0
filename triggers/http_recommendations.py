"""``GET /api/recommendations``: a cached recommendation list (the recommendations cache).

Query: ``items=A,B`` (item-to-item; or ``item=A&item=B`` for ids holding a comma) or
``user=u1`` (user-to-item, with optional items), and optional ``model`` and ``build``
(defaults: ``RECO_MODEL_ID`` and ``RECO_BUILD_ID``, or the ``active`` build's partition, see
:mod:`recobatch.cache`). Limits: at most 20 items of at most 50 characters, a user id of at most
50, a model id of at most 100 characters, a build an integer or ``active``.

Answers: 200 with the v4 single-call shape ``{"recommendedItems": [{"items": [{"id",
"name"?}], "rating"}]}`` and headers ``Recobatch-Run`` (the run that wrote the row) and
``Last-Modified``; 400 naming the parameter; 404 ``NotCached`` (or ``CacheOff`` when
``BATCH_CACHE_TABLE`` is empty) with a sentence; 503 when storage fails.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import azure.functions as func

from recobatch import cache
from recobatch.errors import InputError, StorageError
from recobatch.limits import bounded
from recobatch.settings import Settings
from triggers.blueprint import bp
from triggers.http_common import HttpError, bad_request, json_response, settings_or_error

log = logging.getLogger(__name__)
KNOWN = ("items", "item", "user", "model", "build", "code")  # code: the function key
MAX_MODEL_CHARS = 100
MAX_QUERY_CHARS = 4096


def _query(req: func.HttpRequest) -> dict[str, list[str]]:
    raw = urlsplit(req.url).query
    if len(raw) > MAX_QUERY_CHARS:
        raise bad_request(f"the query is {len(raw):,} characters, over the "
                          f"{MAX_QUERY_CHARS:,}-character limit.")
    query = parse_qs(raw, keep_blank_values=True)
    unknown = sorted(set(query) - set(KNOWN))
    if unknown:
        raise bad_request(f"unknown query parameter {bounded(unknown[0], 40)!r} (known: "
                          "items, item, user, model, build).")
    for name in ("items", "user", "model", "build"):
        if len(query.get(name, [])) > 1:
            raise bad_request(f"give {name} once.")
    return query


def request_of(req: func.HttpRequest, settings: Settings) -> tuple[str, str, str]:
    """``(partition, row key, what)`` of a lookup; ``what`` describes it in a 404."""
    query = _query(req)
    items = [i for text in query.get("items", []) for i in text.split(",")]
    items += query.get("item", [])
    user = query["user"][0] if "user" in query else None
    model = query["model"][0] if "model" in query else settings.reco_model_id
    if not model or len(model) > MAX_MODEL_CHARS:
        raise bad_request(f"model must be 1 to {MAX_MODEL_CHARS} characters long.")
    build: Any = query["build"][0] if "build" in query else settings.reco_build_id
    if isinstance(build, str) and build != cache.ACTIVE_BUILD:
        if not build.isascii() or not build.isdigit() or len(build) > 20:
            raise bad_request(f"build must be an integer or {cache.ACTIVE_BUILD!r}.")
    try:
        row = cache.lookup_key(items, user)
    except InputError as exc:
        raise bad_request(exc.message) from None
    what = (f"user {bounded(user, 60)!r}" if user is not None else "") + \
        (" with " if user is not None and items else "") + \
        (f"items {bounded(','.join(items), 120)!r}" if items else "")
    build_name = cache.ACTIVE_BUILD if build in (None, "") else build
    return (cache.partition_key(model, build),
            row, f"{what} (model {bounded(model, 60)!r}, build {build_name})")


def _find(settings: Settings, partition: str, row: str) -> dict | None:
    table = cache.table_client(cache.table_service(settings), str(settings.cache_table))
    return cache.lookup(table, partition, row)


@bp.route(route="recommendations", methods=["GET"])
async def get_recommendations(req: func.HttpRequest) -> func.HttpResponse:
    """The cached recommendations of a request (200), or 404 when it is not cached."""
    try:
        settings = settings_or_error()
        if not settings.cache_table:
            raise HttpError(404, "CacheOff", "the recommendations cache is off: the app "
                            "setting BATCH_CACHE_TABLE is empty.")
        partition, row, what = request_of(req, settings)
        try:
            entity = await asyncio.to_thread(_find, settings, partition, row)
        except StorageError as exc:
            log.error("cache lookup failed: %s", exc.message)
            raise HttpError(503, "StorageError", "storage is unavailable; retry later.") \
                from None
        if entity is None:
            raise HttpError(404, "NotCached", f"no cached recommendations for {what}: no run "
                            "with the cache on has scored that request.")
        headers = {"Recobatch-Run": str(entity.get("instanceId") or "")}
        written = entity.get("writtenAt")
        if isinstance(written, datetime) and written.tzinfo is not None:
            headers["Last-Modified"] = format_datetime(written.astimezone(UTC), usegmt=True)
        return json_response(cache.answer(entity), 200, headers=headers)
    except HttpError as exc:
        return exc.response()
