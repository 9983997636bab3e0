"""Activity ``submit_chunk``: see docs/design.md for its payload and result."""

from __future__ import annotations

from activities.blueprint import bp


def run(payload: dict) -> dict:
    """Do the work of ``submit_chunk`` (plain, no Functions host needed)."""
    raise NotImplementedError("submit_chunk")


@bp.activity_trigger(input_name="payload")
def submit_chunk(payload: dict) -> dict:
    """Registered activity: calls :func:`run`."""
    return run(payload)
