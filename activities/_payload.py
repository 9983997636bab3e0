"""Reading activity payloads: a wrong payload names the activity and the field."""

from __future__ import annotations

from typing import Any

from azure.storage.blob import BlobClient, BlobServiceClient

from recobatch import naming
from recobatch.errors import InputError


def required(payload: Any, activity: str, name: str, kind: type | tuple[type, ...] = str) -> Any:
    """Return ``payload[name]``, checking it is present and of ``kind``."""
    if not isinstance(payload, dict):
        raise InputError(f"{activity}: the payload must be a JSON object.")
    value = payload.get(name)
    if value is None or not isinstance(value, kind) or value == "":
        raise InputError(f"{activity}: the payload field {name} is missing or invalid.")
    return value


def optional(payload: dict, activity: str, name: str, kind: type | tuple[type, ...]) -> Any:
    """Return ``payload.get(name)``, checking its type when present."""
    value = payload.get(name)
    if value is not None and not isinstance(value, kind):
        raise InputError(f"{activity}: the payload field {name} is invalid.")
    return value


def chunk_ref(payload: Any, activity: str) -> tuple[str, str, str]:
    """The run's instance id, the id of the run whose work folder holds the chunk and the
    chunk's name, from the payload fields ``instanceId``, ``workId`` (the run's own when
    absent) and ``chunk`` (:func:`recobatch.naming.chunk_name`)."""
    instance = required(payload, activity, "instanceId")
    work_id = optional(payload, activity, "workId", str) or instance
    chunk = naming.chunk_name(required(payload, activity, "chunk", (str, int, dict)))
    return instance, work_id, chunk


def results_format(payload: dict, activity: str) -> tuple[Any, bool]:
    """The run's results format (:data:`recobatch.assembly.FORMATS`) and ``includeMetadata``,
    from the optional payload fields ``format`` (``json`` when absent) and
    ``includeMetadata``."""
    from recobatch.assembly import output_format  # azure-storage: only where it is needed

    name = optional(payload, activity, "format", str)
    try:
        fmt = output_format(name)
    except ValueError:
        raise InputError(f"{activity}: the payload field format is invalid.") from None
    return fmt, bool(optional(payload, activity, "includeMetadata", bool))


def input_blob(payload: Any, activity: str,
               service: BlobServiceClient) -> tuple[BlobClient, str, str]:
    """The run's input blob, its name and the ETag of the version the run works on.

    From the payload fields ``container``, ``inputName`` and ``etag``; activities that write to
    the output folder pass them to :func:`recobatch.storage.ensure_current`.
    """
    container = required(payload, activity, "container")
    name = required(payload, activity, "inputName")
    etag = required(payload, activity, "etag")
    return service.get_container_client(container).get_blob_client(name), name, etag
