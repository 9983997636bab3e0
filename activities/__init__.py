"""Thin activities: validate the payload, call the recobatch library, return JSON-able dicts.

Every activity is registered on :data:`bp` under its function name (see docs/design.md) and
raises :class:`recobatch.errors.RecobatchError` subclasses instead of returning error strings.
Each module also has a plain ``run(payload) -> dict`` that the registered function calls, so
tests and devhost can call the logic without the Functions runtime.

Orchestrators pass the function objects below to ``context.call_activity``.
"""

from __future__ import annotations

from activities.blueprint import bp
from activities.cancel_operation import cancel_operation
from activities.check_operation import check_operation
from activities.fill_cache import fill_cache
from activities.is_cancel_requested import is_cancel_requested
from activities.merge_results import merge_results
from activities.notify_run import notify_run
from activities.prepare_batch import prepare_batch
from activities.prepare_rerun import prepare_rerun
from activities.submit_chunk import submit_chunk
from activities.verify_output import verify_output
from activities.write_marker import write_marker

__all__ = [
    "bp", "prepare_batch", "submit_chunk", "check_operation", "verify_output",
    "cancel_operation", "is_cancel_requested", "merge_results", "write_marker", "notify_run",
    "prepare_rerun", "fill_cache",
]
