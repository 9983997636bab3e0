"""Build routes: ``POST|GET /models/{id}/builds`` and ``GET /models/{id}/builds/{buildId}``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse

from recoservice import API_PREFIX
from recoservice.auth import require_key
from recoservice.builder import create_build, parse_build_request, start_build
from recoservice.database import Row
from recoservice.errors import ApiError
from recoservice.models_api import require_model
from recoservice.operations import operation_url
from recoservice.state import State

router = APIRouter()


def build_json(row: Row, model_name: str) -> dict[str, Any]:
    return {"id": row["id"], "description": row["description"], "type": row["type"],
            "modelName": model_name, "modelId": row["model_id"], "status": row["status"],
            "statusMessage": row["status_message"], "startDateTime": row["start_time"],
            "endDateTime": row["end_time"], "modifiedDateTime": row["modified"]}


@router.post("/models/{model_id}/builds", status_code=202)
def post_build(model_id: str, request: Request, body: dict[str, Any] = Body(...),  # noqa: B008
               key: str = Depends(require_key)) -> JSONResponse:
    """Start a SAR build (see ``recoservice.builder`` for types and parameters).

    Answers 202 with ``{"buildId"}`` and an ``Operation-Location`` to poll.
    """
    state: State = request.app.state.state
    require_model(state, model_id)
    build = parse_build_request(body)
    op_id = state.create_operation("BuildModel", key)
    build_id = create_build(state, model_id, build, op_id)
    base = str(request.base_url).rstrip("/")
    state.update_operation(
        op_id, resource_location=f"{base}{API_PREFIX}/models/{model_id}/builds/{build_id}")
    start_build(state, model_id, build_id, op_id)
    return JSONResponse({"buildId": build_id}, status_code=202,
                        headers={"Operation-Location": operation_url(request, op_id)})


@router.get("/models/{model_id}/builds")
def list_builds(model_id: str, request: Request) -> dict[str, Any]:
    state: State = request.app.state.state
    model = require_model(state, model_id)
    with state.db(write=False) as conn:
        rows = conn.execute("SELECT * FROM builds WHERE model_id = ? ORDER BY id",
                            (model_id,)).fetchall()
    return {"builds": [build_json(r, model["name"]) for r in rows]}


@router.get("/models/{model_id}/builds/{build_id}")
def get_build(model_id: str, build_id: int, request: Request) -> dict[str, Any]:
    state: State = request.app.state.state
    model = require_model(state, model_id)
    with state.db(write=False) as conn:
        row = conn.execute("SELECT * FROM builds WHERE id = ? AND model_id = ?",
                           (build_id, model_id)).fetchone()
    if row is None:
        raise ApiError(404, "BuildNotFound", f"Model '{model_id}' has no build {build_id}.")
    return build_json(row, model["name"])
