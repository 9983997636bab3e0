"""Activity ``cancel_operation``: ask the service to cancel a batch job.

Input ``{operationId, instanceId?, chunk?}`` (the ids only name its span); output
``{cancelled: bool}`` (``false`` when it had already ended).
"""

from __future__ import annotations

from activities._payload import required
from activities.blueprint import bp
from recobatch.client import client_for
from recobatch.settings import get_settings

NAME = "cancel_operation"


def run(payload: dict) -> dict:
    """Do the work of ``cancel_operation`` (plain, no Functions host needed)."""
    operation_id = required(payload, NAME, "operationId")
    settings = get_settings()
    client = client_for(settings.reco_endpoint, settings.reco_subscription_key)
    return {"cancelled": client.cancel_operation(operation_id)}


@bp.activity_trigger(input_name="payload")
def cancel_operation(payload: dict) -> dict:
    """Registered activity: calls :func:`run`."""
    return run(payload)
