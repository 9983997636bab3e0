"""Catalog and usage routes: uploads with import statistics, catalog listing and lookup."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from recoservice.database import Row
from recoservice.errors import ApiError
from recoservice.imports import import_catalog, import_usage
from recoservice.models_api import require_model
from recoservice.state import State

router = APIRouter()
DEFAULT_TOP = 100
MAX_TOP = 1000


async def read_capped_body(request: Request, limit: int, what: str) -> bytes:
    """The request body, refusing with 413 (naming the limit) once it grows past ``limit``."""
    declared = request.headers.get("content-length")
    too_big = ApiError(413, "PayloadTooLarge",
                       f"The {what} file is larger than the limit of {limit:,} bytes.")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data.strip():
        raise ApiError(400, "BadArgument", f"The {what} file (request body) is empty.")
    return data


@router.post("/models/{model_id}/catalog")
async def upload_catalog(model_id: str, request: Request,
                         catalogDisplayName: str = Query("catalog", max_length=255),  # noqa: N803
                         ) -> dict[str, Any]:
    """Import catalog lines ``<ItemId>,<ItemName>,<Category>[,<Description>[,<k=v>...]]``."""
    state: State = request.app.state.state
    await run_in_threadpool(require_model, state, model_id)
    data = await read_capped_body(request, request.app.state.config.max_catalog_bytes,
                                  "catalog")
    stats = await run_in_threadpool(import_catalog, state, model_id, data, catalogDisplayName)
    # Names and metadata in cached scorers come from the catalog; reload them next time.
    request.app.state.scorer.forget(model_id)
    return stats.to_json()


@router.post("/models/{model_id}/usage")
async def upload_usage(model_id: str, request: Request,
                       usageDisplayName: str = Query("usage", max_length=255),  # noqa: N803
                       ) -> dict[str, Any]:
    """Import usage lines ``<UserId>,<ItemId>,<Time ISO-8601>[,<EventType>]``."""
    state: State = request.app.state.state
    await run_in_threadpool(require_model, state, model_id)
    data = await read_capped_body(request, request.app.state.config.max_usage_bytes, "usage")
    stats, file_id = await run_in_threadpool(import_usage, state, model_id, data,
                                             usageDisplayName)
    return {**stats.to_json(), "fileId": file_id}


def item_json(row: Row) -> dict[str, Any]:
    return {"id": row["item_id"], "name": row["name"], "category": row["category"],
            "description": row["description"], "features": json.loads(row["features"]),
            "metadata": row["metadata"]}


@router.get("/models/{model_id}/catalog")
def list_catalog(model_id: str, request: Request,
                 top: int = Query(DEFAULT_TOP, alias="$top", ge=1, le=MAX_TOP),
                 skip: int = Query(0, alias="$skip", ge=0)) -> dict[str, Any]:
    """A page of catalog items in upload order, with ``@nextLink`` when more follow."""
    state: State = request.app.state.state
    require_model(state, model_id)
    with state.db(write=False) as conn:
        rows = conn.execute("SELECT * FROM catalog_items WHERE model_id = ? ORDER BY seq "
                            "LIMIT ? OFFSET ?", (model_id, top + 1, skip)).fetchall()
    out: dict[str, Any] = {"value": [item_json(r) for r in rows[:top]]}
    if len(rows) > top:
        query = urlencode({"$top": top, "$skip": skip + top}, safe="$")
        out["@nextLink"] = f"{str(request.url).split('?')[0]}?{query}"
    return out


@router.get("/models/{model_id}/catalog/items")
def catalog_items(model_id: str, request: Request, ids: str | None = Query(None),
                  searchTerm: str | None = Query(None, min_length=1),  # noqa: N803
                  ) -> dict[str, Any]:
    """Items by id (``ids=a,b``, unknown ids left out) or by a name/id substring."""
    state: State = request.app.state.state
    require_model(state, model_id)
    if (ids is None) == (searchTerm is None):
        raise ApiError(400, "BadArgument",
                       "Give exactly one of the query parameters 'ids' or 'searchTerm'.")
    with state.db(write=False) as conn:
        if ids is not None:
            wanted = [i.strip() for i in ids.split(",") if i.strip()]
            if not wanted:
                raise ApiError(400, "BadArgument", "Query parameter 'ids' names no item.")
            marks = ",".join("?" * len(wanted))
            rows = conn.execute(f"SELECT * FROM catalog_items WHERE model_id = ? AND item_id "
                                f"IN ({marks}) ORDER BY seq", (model_id, *wanted)).fetchall()
        else:
            pattern = f"%{searchTerm}%"
            # LOWER on both sides: SQLite's LIKE ignores ASCII case, PostgreSQL's does not.
            rows = conn.execute("SELECT * FROM catalog_items WHERE model_id = ? AND "
                                "(LOWER(name) LIKE LOWER(?) OR LOWER(item_id) LIKE LOWER(?)) "
                                "ORDER BY seq LIMIT ?",
                                (model_id, pattern, pattern, MAX_TOP)).fetchall()
    return {"value": [item_json(r) for r in rows]}


@router.get("/models/{model_id}/usage")
def list_usage_files(model_id: str, request: Request) -> dict[str, Any]:
    """The usage files imported into the model: id, name, size, events imported, date."""
    state: State = request.app.state.state
    require_model(state, model_id)
    with state.db(write=False) as conn:
        rows = conn.execute("SELECT * FROM usage_files WHERE model_id = ? ORDER BY created, id",
                            (model_id,)).fetchall()
    return {"value": [{"id": r["id"], "name": r["display_name"], "dateModified": r["created"],
                       "sizeInBytes": r["size_bytes"], "importedLineCount": r["imported"]}
                      for r in rows]}


@router.delete("/models/{model_id}/usage/{file_id}", status_code=204)
def delete_usage_file(model_id: str, file_id: str, request: Request) -> Response:
    """Forget one usage file (builds made with it keep working; the next build skips it)."""
    state: State = request.app.state.state
    require_model(state, model_id)
    with state.db() as conn:
        gone = conn.execute("DELETE FROM usage_files WHERE id = ? AND model_id = ?",
                            (file_id, model_id)).rowcount
    if not gone:
        raise ApiError(404, "UsageFileNotFound",
                       f"Model '{model_id}' has no usage file '{file_id}'.")
    state.discard(state.usage_path(model_id, file_id))
    return Response(status_code=204)
