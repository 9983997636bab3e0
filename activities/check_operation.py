"""Activity ``check_operation``: the status of a batch job's operation.

Input ``{operationId}``; output ``{status, percentComplete, message}``. Raises
``UpstreamUnavailable`` once the client's own retries (5xx, connection) are spent.
"""

from __future__ import annotations

from activities._payload import required
from activities.blueprint import bp
from recobatch.client import client_for
from recobatch.settings import get_settings

NAME = "check_operation"


def run(payload: dict) -> dict:
    """Do the work of ``check_operation`` (plain, no Functions host needed)."""
    operation_id = required(payload, NAME, "operationId")
    settings = get_settings()
    operation = client_for(settings.reco_endpoint,
                           settings.reco_subscription_key).get_operation(operation_id)
    return {"status": operation.status, "percentComplete": operation.percent_complete,
            "message": operation.message}


@bp.activity_trigger(input_name="payload")
def check_operation(payload: dict) -> dict:
    """Registered activity: calls :func:`run`."""
    return run(payload)
