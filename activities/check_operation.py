"""Activity ``check_operation``: see docs/design.md for its payload and result."""

from __future__ import annotations

from activities.blueprint import bp


def run(payload: dict) -> dict:
    """Do the work of ``check_operation`` (plain, no Functions host needed)."""
    raise NotImplementedError("check_operation")


@bp.activity_trigger(input_name="payload")
def check_operation(payload: dict) -> dict:
    """Registered activity: calls :func:`run`."""
    return run(payload)
