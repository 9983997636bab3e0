"""Single-call recommendation routes: ``recommend/item`` and ``recommend/user``.

Both answer ``{"recommendedItems": [{"items": [{"id", "name", "metadata"}], "rating",
"reasoning"}]}``. ``recommend/user`` with an unknown user falls back to the ``itemIds`` given
(as item-to-item), else answers an empty list.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

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


@router.get("/models/{model_id}/recommend/item")
def recommend_item(
    model_id: str, request: Request,
    itemIds: str = Query(..., min_length=1),  # noqa: N803 - the v4 parameter names
    numberOfResults: int = Query(10, ge=1, le=100),  # noqa: N803
    minimalScore: float = Query(0.0),  # noqa: N803
    includeMetadata: bool = Query(False),  # noqa: N803
    buildId: int | None = Query(None),  # noqa: N803
) -> dict[str, Any]:
    """Items people who like ``itemIds`` also like (unknown ids ignored)."""
    seeds = _split_ids(itemIds)
    if not seeds:
        raise ApiError(400, "BadArgument", "Query parameter 'itemIds' names no item.")
    scorer: Scorer = request.app.state.scorer
    scored = scorer.recommend_items(model_id, buildId, [seeds], numberOfResults,
                                    include_metadata=includeMetadata, minimal_score=minimalScore)
    return _answer(scored[0])


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
