"""Activity ``write_marker``: see docs/design.md for its payload and result."""

from __future__ import annotations

from activities.blueprint import bp


def run(payload: dict) -> dict:
    """Do the work of ``write_marker`` (plain, no Functions host needed)."""
    raise NotImplementedError("write_marker")


@bp.activity_trigger(input_name="payload")
def write_marker(payload: dict) -> dict:
    """Registered activity: calls :func:`run`."""
    return run(payload)
