"""Activity ``verify_output``: see docs/design.md for its payload and result."""

from __future__ import annotations

from activities.blueprint import bp


def run(payload: dict) -> dict:
    """Do the work of ``verify_output`` (plain, no Functions host needed)."""
    raise NotImplementedError("verify_output")


@bp.activity_trigger(input_name="payload")
def verify_output(payload: dict) -> dict:
    """Registered activity: calls :func:`run`."""
    return run(payload)
