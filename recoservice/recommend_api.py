"""Single-call recommendation routes: ``recommend/item`` and ``recommend/user``.

Both answer ``{"recommendedItems": [{"items": [{"id", "name", "metadata"}], "rating",
"reasoning"}]}``. ``recommend/user`` with an unknown user falls back to the ``itemIds`` given
(as item-to-item), else answers an empty list.

``recommend/item`` runs on the event loop: once its build is loaded, one request scores in a
fraction of a millisecond (``Scorer.recommend_one``), less than a hop to a worker thread and
back would cost. Only loading a build (seconds, once) goes to the thread pool.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from recoservice import query
from recoservice.errors import ApiError
from recoservice.scoring import ScoredRequest, Scorer

router = APIRouter()
MAX_ITEM_IDS_CHARS = 1024


def _split_ids(item_ids: str | None) -> list[str]:
    if item_ids is None:
        return []
    if len(item_ids) > MAX_ITEM_IDS_CHARS:
        raise ApiError(400, "BadArgument",
                       f"Query parameter 'itemIds' is longer than {MAX_ITEM_IDS_CHARS} "
                       "characters.")
    return [i.strip() for i in item_ids.split(",") if i.strip()]


def _answer(scored: ScoredRequest) -> dict[str, Any]:
    return {"recommendedItems": [
        {"items": [{"id": r["itemId"], "name": r["name"], "metadata": r["metadata"]}],
         "rating": r["rating"], "reasoning": r["reasoning"]}
        for r in scored.recommendations]}


def json_response(body: Any) -> Response:
    """``body`` as JSON, encoded once with orjson (no response-model pass)."""
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/models/{model_id}/recommend/item", openapi_extra=query.openapi(
    ("itemIds", "string", True, "seed item ids, comma-separated (at most 1024 characters)"),
    ("numberOfResults", "integer", False, "1 to 100 (default 10)"),
    ("minimalScore", "number", False, "drop results scoring below (default 0)"),
    ("includeMetadata", "boolean", False, "fill each item's metadata (default false)"),
    ("buildId", "integer", False, "build to use (default: the active build)"),
    path=("model_id",),
))
async def recommend_item(request: Request) -> Response:
    """Items people who like ``itemIds`` also like (unknown ids ignored)."""
    model_id: str = request.path_params["model_id"]
    params = request.query_params
    seeds = _split_ids(query.text(params, "itemIds", required=True))
    k = query.integer(params, "numberOfResults", 10, 1, 100)
    minimal_score = query.number(params, "minimalScore", 0.0)
    include_metadata = query.boolean(params, "includeMetadata", False)
    build_id = query.integer(params, "buildId", None)
    if not seeds:
        raise ApiError(400, "BadArgument", "Query parameter 'itemIds' names no item.")
    scorer: Scorer = request.app.state.scorer
    build_id = scorer.resolve_build(model_id, build_id)
    built = scorer.cached(model_id, build_id)
    if built is None:
        built = await run_in_threadpool(scorer.load, model_id, build_id)
    scored = scorer.recommend_one(built, seeds, int(k or 10),
                                  include_metadata=include_metadata, minimal_score=minimal_score)
    return json_response(_answer(scored))


@router.get("/models/{model_id}/recommend/user")
def recommend_user(
    model_id: str, request: Request,
    userId: str = Query(..., min_length=1, max_length=255),  # noqa: N803
    numberOfResults: int = Query(10, ge=1, le=100),  # noqa: N803
    itemIds: str | None = Query(None),  # noqa: N803
    minimalScore: float = Query(0.0),  # noqa: N803
    includeMetadata: bool = Query(False),  # noqa: N803
    buildId: int | None = Query(None),  # noqa: N803
) -> dict[str, Any]:
    """Items for a user from their usage history (time-decayed affinity)."""
    seeds = _split_ids(itemIds)
    scorer: Scorer = request.app.state.scorer
    scored = scorer.recommend_users(model_id, buildId, [userId], numberOfResults,
                                    include_metadata=includeMetadata,
                                    minimal_score=minimalScore)[0]
    if scored.error and seeds:
        scored = scorer.recommend_items(model_id, buildId, [seeds], numberOfResults,
                                        include_metadata=includeMetadata,
                                        minimal_score=minimalScore)[0]
    return _answer(scored)
