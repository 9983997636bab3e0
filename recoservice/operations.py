"""Operation routes: ``GET /operations/{id}`` tracks builds and batch jobs, ``DELETE`` cancels.

An operation belongs to the subscription key that started it; other keys get 404, as if it
did not exist, so ids cannot be probed across subscriptions.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from recoservice import API_PREFIX
from recoservice.auth import require_key
from recoservice.errors import ApiError
from recoservice.state import State, key_hash

router = APIRouter()


def operation_url(request: Request, op_id: str) -> str:
    """Absolute ``Operation-Location`` URL of an operation."""
    return f"{str(request.base_url).rstrip('/')}{API_PREFIX}/operations/{op_id}"


def _owned(state: State, op_id: str, key: str) -> dict[str, Any]:
    owner = state.operation_owner(op_id)
    operation = state.get_operation(op_id) if owner == key_hash(key) else None
    if operation is None:
        raise ApiError(404, "OperationNotFound", f"Operation '{op_id}' does not exist.")
    return operation


@router.get("/operations/{operation_id}")
async def get_operation(operation_id: str, request: Request,
                        key: str = Depends(require_key)) -> dict[str, Any]:
    """Status of a build or batch job (fault rules for target ``status`` apply first)."""
    await request.app.state.faults.apply("status")
    return _owned(request.app.state.state, operation_id, key)


@router.delete("/operations/{operation_id}")
def cancel_operation(operation_id: str, request: Request,
                     key: str = Depends(require_key)) -> dict[str, Any]:
    """Ask a running operation to stop; the thread running it ends it ``Cancelled``.

    Answers the operation (``Cancelling``), or 409 when it has already finished.
    """
    state: State = request.app.state.state
    operation = _owned(state, operation_id, key)
    if not state.request_cancel(operation_id):
        raise ApiError(409, "OperationCompleted",
                       f"Operation '{operation_id}' already ended {operation['status']}; "
                       "nothing to cancel.")
    return _owned(state, operation_id, key)

