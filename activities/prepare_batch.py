"""Activity ``prepare_batch``: see docs/design.md for its payload and result."""

from __future__ import annotations

from activities.blueprint import bp


def run(payload: dict) -> dict:
    """Do the work of ``prepare_batch`` (plain, no Functions host needed)."""
    raise NotImplementedError("prepare_batch")


@bp.activity_trigger(input_name="payload")
def prepare_batch(payload: dict) -> dict:
    """Registered activity: calls :func:`run`."""
    return run(payload)
