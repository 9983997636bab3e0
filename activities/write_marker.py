"""Activity ``write_marker``: write ``_SUCCESS`` or ``_FAILED`` last in the output folder.

Input ``{kind: "success"|"failed", container, inputName, etag, marker: {...}}`` (see
``recobatch.markers`` for the builders); output ``{name}``. Nothing is written unless
``container/inputName`` still has ``etag``: a run superseded by a newer upload of the same blob
(or whose blob was deleted) raises ``Superseded``, so it can neither replace nor remove the
newer run's marker.
"""

from __future__ import annotations

from activities._payload import input_blob, required
from activities.blueprint import bp
from recobatch import markers, storage
from recobatch.errors import InputError
from recobatch.settings import get_settings

NAME = "write_marker"


def run(payload: dict) -> dict:
    """Do the work of ``write_marker`` (plain, no Functions host needed)."""
    kind = required(payload, NAME, "kind")
    if kind not in markers.KINDS:
        raise InputError(f"{NAME}: kind must be one of {', '.join(markers.KINDS)}.")
    marker = required(payload, NAME, "marker", dict)
    settings = get_settings()
    service = storage.service_client(settings)
    source, input_name, etag = input_blob(payload, NAME, service)
    storage.ensure_current(source, etag)
    out = storage.ensure_container(service, settings.output_container)
    return {"name": markers.write_marker(out, kind, input_name, marker)}


@bp.activity_trigger(input_name="payload")
def write_marker(payload: dict) -> dict:
    """Registered activity: calls :func:`run`."""
    return run(payload)
