"""Activity ``notify_run``: POST the run's completion event (CloudEvents 1.0, signed) once.

Input ``{instanceId, markerName}`` (the marker ``write_marker`` wrote); output ``{outcome:
Delivered|Retry|Refused|Skipped, httpStatus, message}``. The event's ``data`` is the marker
read back from the output container, so no payload passes through the orchestration history,
and the URL and secret are read here from the app settings (never in the history). ``Skipped``:
no ``BATCH_NOTIFY_URL``, or the marker is gone or now belongs to another run (a newer upload
owns the folder). One attempt per call: ``batch_orchestrator`` retries ``Retry`` on durable
timers (:mod:`recobatch.notify`).
"""

from __future__ import annotations

import json
import logging

from activities._payload import required
from activities.blueprint import bp
from recobatch import notify, storage
from recobatch.settings import get_settings

NAME = "notify_run"
SKIPPED = "Skipped"
log = logging.getLogger(__name__)


def run(payload: dict) -> dict:
    """Do the work of ``notify_run`` (plain, no Functions host needed)."""
    instance = required(payload, NAME, "instanceId")
    marker_name = required(payload, NAME, "markerName")
    settings = get_settings()
    if not settings.notify_url:
        return {"outcome": SKIPPED, "httpStatus": None, "message": "BATCH_NOTIFY_URL is unset."}
    out = storage.service_client(settings).get_container_client(settings.output_container)
    body = storage.download_bytes(out.get_blob_client(marker_name))
    marker = json.loads(body) if body is not None else None
    if not isinstance(marker, dict) or marker.get("instanceId") != instance:
        return {"outcome": SKIPPED, "httpStatus": None,
                "message": "the run's marker is no longer there (a newer run owns the folder)."}
    attempt = notify.deliver(settings.notify_url, notify.body_of(
        notify.event(marker, settings.app_name)), settings.notify_secret)
    log.info("%s completion event: %s %s", instance, attempt.outcome, attempt.message)
    return attempt.as_dict()


@bp.activity_trigger(input_name="payload")
def notify_run(payload: dict) -> dict:
    """Registered activity: calls :func:`run`."""
    return run(payload)
