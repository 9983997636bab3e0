"""Activity ``merge_results``: see docs/design.md for its payload and result."""

from __future__ import annotations

from activities.blueprint import bp


def run(payload: dict) -> dict:
    """Do the work of ``merge_results`` (plain, no Functions host needed)."""
    raise NotImplementedError("merge_results")


@bp.activity_trigger(input_name="payload")
def merge_results(payload: dict) -> dict:
    """Registered activity: calls :func:`run`."""
    return run(payload)
