"""Model routes: ``POST|GET /models``, ``GET|PATCH|DELETE /models/{id}``.

Models are global to the service: any valid key sees and changes all of them.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from fastapi import APIRouter, Body, Request, Response

from recoservice.database import Row
from recoservice.errors import ApiError
from recoservice.state import State, now_iso

router = APIRouter()
MAX_NAME = 255


def require_model(state: State, model_id: str) -> Row:
    """The model's row, or ``404 ModelNotFound``."""
    with state.db(write=False) as conn:
        row = conn.execute("SELECT * FROM models WHERE id = ?", (model_id,)).fetchone()
    if row is None:
        raise ApiError(404, "ModelNotFound", f"Model '{model_id}' does not exist.")
    return row


def model_json(row: Row) -> dict[str, Any]:
    """A model row as the API shows it (same shape as ``State.get_model``)."""
    return {"id": row["id"], "name": row["name"], "description": row["description"],
            "createdDateTime": row["created"], "activeBuildId": row["active_build_id"]}


def create_model(state: State, name: str, description: str = "") -> dict[str, Any]:
    """Insert a model and return it as the API shows it."""
    model_id = str(uuid.uuid4())
    with state.db() as conn:
        conn.execute("INSERT INTO models (id, name, description, created) VALUES (?, ?, ?, ?)",
                     (model_id, name, description, now_iso()))
    return model_json(require_model(state, model_id))


def _text_field(body: dict[str, Any], name: str, required: bool) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(400, "BadArgument", f"Body field '{name}' is required.")
        return None
    if not isinstance(value, str):
        raise ApiError(400, "BadArgument", f"Body field '{name}' must be a string.")
    if len(value) > MAX_NAME and name == "modelName":
        raise ApiError(400, "BadArgument", f"Body field '{name}' is longer than {MAX_NAME}.")
    return value


@router.post("/models", status_code=201)
def post_model(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
    """Create a model: ``{"modelName", "description"}``."""
    name = _text_field(body, "modelName", required=True)
    if not name or not name.strip():
        raise ApiError(400, "BadArgument", "Body field 'modelName' must not be empty.")
    description = _text_field(body, "description", required=False) or ""
    return create_model(request.app.state.state, name.strip(), description)


@router.get("/models")
async def list_models(request: Request) -> Response:
    """All models. On the event loop: one indexed read, cheaper than a worker-thread hop."""
    with request.app.state.state.db(write=False) as conn:
        rows = conn.execute("SELECT * FROM models ORDER BY created, id").fetchall()
    return Response(orjson.dumps({"models": [model_json(r) for r in rows]}),
                    media_type="application/json")


@router.get("/models/{model_id}")
def get_model(model_id: str, request: Request) -> dict[str, Any]:
    return model_json(require_model(request.app.state.state, model_id))


@router.patch("/models/{model_id}")
def patch_model(model_id: str, request: Request,
                body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
    """Change ``description`` and/or ``activeBuildId`` (a succeeded build of this model)."""
    state: State = request.app.state.state
    require_model(state, model_id)
    unknown = sorted(set(body) - {"description", "activeBuildId"})
    if unknown:
        raise ApiError(400, "BadArgument",
                       f"Body field '{unknown[0]}' cannot be changed; "
                       "only 'description' and 'activeBuildId' can.")
    description = _text_field(body, "description", required=False)
    with state.db() as conn:
        if description is not None:
            conn.execute("UPDATE models SET description = ? WHERE id = ?",
                         (description, model_id))
        if "activeBuildId" in body:
            build_id = body["activeBuildId"]
            if not isinstance(build_id, int) or isinstance(build_id, bool):
                raise ApiError(400, "BadArgument", "Body field 'activeBuildId' must be an integer.")
            row = conn.execute("SELECT status FROM builds WHERE id = ? AND model_id = ?",
                               (build_id, model_id)).fetchone()
            if row is None:
                raise ApiError(400, "BadArgument",
                               f"Body field 'activeBuildId': model '{model_id}' has no build "
                               f"{build_id}.")
            if row["status"] != "Succeeded":
                raise ApiError(400, "BadArgument",
                               f"Body field 'activeBuildId': build {build_id} is "
                               f"{row['status']}, only a Succeeded build can be active.")
            conn.execute("UPDATE models SET active_build_id = ? WHERE id = ?",
                         (build_id, model_id))
    return model_json(require_model(state, model_id))


@router.delete("/models/{model_id}", status_code=204)
def delete_model(model_id: str, request: Request) -> Response:
    """Delete the model with its catalog, usage, builds and build files."""
    state: State = request.app.state.state
    require_model(state, model_id)
    with state.db() as conn:
        builds = [r["id"] for r in conn.execute("SELECT id FROM builds WHERE model_id = ?",
                                                (model_id,))]
        files = [r["id"] for r in conn.execute("SELECT id FROM usage_files WHERE model_id = ?",
                                               (model_id,))]
        for table, column in (("catalog_items", "model_id"), ("catalog_meta", "model_id"),
                              ("usage_files", "model_id"),
                              ("builds", "model_id"), ("models", "id")):
            conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (model_id,))
    for file_id in files:
        state.discard(state.usage_path(model_id, file_id))
    for build_id in builds:
        for path in (state.build_path(model_id, build_id), state.ids_path(model_id, build_id)):
            state.discard(path)
    request.app.state.scorer.forget(model_id)
    return Response(status_code=204)
