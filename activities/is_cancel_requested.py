"""Activity ``is_cancel_requested``: is the run's ``_CANCEL`` flag blob present?

Input ``{instanceId, chunk?}`` (``chunk`` only names its span); output ``{cancelled: bool}``.
"""

from __future__ import annotations

from activities._payload import required
from activities.blueprint import bp
from recobatch import naming, storage
from recobatch.settings import get_settings

NAME = "is_cancel_requested"


def run(payload: dict) -> dict:
    """Do the work of ``is_cancel_requested`` (plain, no Functions host needed)."""
    instance = required(payload, NAME, "instanceId")
    settings = get_settings()
    blob = storage.service_client(settings).get_blob_client(settings.work_container,
                                                            naming.cancel_blob(instance))
    return {"cancelled": storage.exists(blob)}


@bp.activity_trigger(input_name="payload")
def is_cancel_requested(payload: dict) -> dict:
    """Registered activity: calls :func:`run`."""
    return run(payload)
