"""Activity ``is_cancel_requested``: see docs/design.md for its payload and result."""

from __future__ import annotations

from activities.blueprint import bp


def run(payload: dict) -> dict:
    """Do the work of ``is_cancel_requested`` (plain, no Functions host needed)."""
    raise NotImplementedError("is_cancel_requested")


@bp.activity_trigger(input_name="payload")
def is_cancel_requested(payload: dict) -> dict:
    """Registered activity: calls :func:`run`."""
    return run(payload)
