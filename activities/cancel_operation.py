"""Activity ``cancel_operation``: see docs/design.md for its payload and result."""

from __future__ import annotations

from activities.blueprint import bp


def run(payload: dict) -> dict:
    """Do the work of ``cancel_operation`` (plain, no Functions host needed)."""
    raise NotImplementedError("cancel_operation")


@bp.activity_trigger(input_name="payload")
def cancel_operation(payload: dict) -> dict:
    """Registered activity: calls :func:`run`."""
    return run(payload)
