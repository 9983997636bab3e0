"""Activity ``check_operation``: the status of a batch job's operation, and the run's cancel flag.

Input ``{operationId, instanceId?, chunk?, poll?}`` (``chunk`` and ``poll``, the number of this
poll of the job, only feed telemetry); output ``{status, percentComplete, message,
cancelRequested}``. With ``instanceId`` the run's ``_CANCEL`` flag blob is read first: when it
is there the answer is ``{cancelRequested: true}`` with no status (the service is not asked), so
a chunk that missed the ``cancel`` event (it started after the HTTP cancel read the run's
running chunks) still stops at its next poll. Raises ``UpstreamUnavailable`` once the client's
own retries (5xx, connection) are spent.
"""

from __future__ import annotations

from activities._payload import optional, required
from activities.blueprint import bp
from recobatch import naming, storage
from recobatch.client import client_for
from recobatch.settings import get_settings

NAME = "check_operation"


def run(payload: dict) -> dict:
    """Do the work of ``check_operation`` (plain, no Functions host needed)."""
    operation_id = required(payload, NAME, "operationId")
    instance = optional(payload, NAME, "instanceId", str)
    settings = get_settings()
    if instance:
        flag = storage.service_client(settings).get_blob_client(settings.work_container,
                                                                naming.cancel_blob(instance))
        if storage.exists(flag):
            return {"status": None, "percentComplete": None, "message": "",
                    "cancelRequested": True}
    operation = client_for(settings.reco_endpoint,
                           settings.reco_subscription_key).get_operation(operation_id)
    return {"status": operation.status, "percentComplete": operation.percent_complete,
            "message": operation.message, "cancelRequested": False}


@bp.activity_trigger(input_name="payload")
def check_operation(payload: dict) -> dict:
    """Registered activity: calls :func:`run`."""
    return run(payload)
