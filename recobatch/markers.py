"""``_SUCCESS`` and ``_FAILED``: the JSON markers written last in a run's output folder.

A reader waits for a marker, never for ``results.json``: the marker is written after the data,
so its presence means the data is complete (``_SUCCESS``) or final (``_FAILED``, partial results
kept). Exactly one marker is left: writing one removes a stale marker of the other kind.
That removal is safe only because the caller (activity ``write_marker``) first confirmed that
the run's input blob still has the run's ETag: the other marker is then this run's own or an
older upload's, never a newer upload's (a superseded run raises ``Superseded`` and writes
nothing, see :func:`recobatch.storage.ensure_current`).

The builders are pure (orchestrators may call them); :func:`write_marker` does the I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.blob import ContainerClient, ContentSettings

from recobatch import naming
from recobatch.errors import CODES, INTERNAL_ERROR, StorageError
from recobatch.limits import redact, safe_text

SUCCESS = "success"
FAILED = "failed"
KINDS = (SUCCESS, FAILED)
# Keys that must never reach a marker even if a caller passes them along.
_SECRET_KEYS = frozenset({"sasBlobToken", "sas_token", "subscriptionKey", "key", "accountKey"})


def _duration(started: str | None, ended: str | None) -> float | None:
    if not started or not ended:
        return None
    try:
        start = datetime.fromisoformat(started.replace("Z", "+00:00"))
        end = datetime.fromisoformat(ended.replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((end - start).total_seconds(), 3)


def chunk_entry(chunk: Mapping[str, Any]) -> dict[str, Any]:
    """One chunk as markers show it, from a chunk orchestrator result.

    ``chunk`` holds ``chunk`` (or ``name``), ``status``, ``operationId``, ``message``,
    ``startedAt``, ``endedAt``, ``results``.
    """
    started, ended = chunk.get("startedAt"), chunk.get("endedAt")
    entry = {"name": chunk.get("chunk") or chunk.get("name"), "status": chunk.get("status"),
             "operationId": chunk.get("operationId"), "startedAt": started, "endedAt": ended,
             "durationSeconds": _duration(started, ended), "results": chunk.get("results")}
    if chunk.get("message"):
        entry["message"] = chunk.get("message")
    if "reused" in chunk:  # a re-run: this chunk's verified output came from the earlier run
        entry["reused"] = bool(chunk["reused"])
    return entry


def success_marker(*, instance_id: str, input_name: str, etag: str, size: int,
                   job: Mapping[str, Any], counts: Mapping[str, int],
                   chunks: Iterable[Mapping[str, Any]], outputs: Iterable[Mapping[str, Any]],
                   started_at: str, ended_at: str, container: str | None = None
                   ) -> dict[str, Any]:
    """The ``_SUCCESS`` document.

    Parameters
    ----------
    counts : mapping
        ``requests`` (in the file), ``valid``, ``rejected``, ``results``, ``errors``
        (request-level error lines in ``errors.txt``).
    chunks : iterable of mapping
        Chunk orchestrator results (see :func:`chunk_entry`).
    outputs : iterable of mapping
        ``{name, size, md5}`` of ``results.json`` and ``errors.txt``.
    """
    return {
        "kind": SUCCESS, "instanceId": instance_id,
        "input": {"container": container, "name": input_name, "etag": etag, "size": size},
        "job": dict(job), "counts": dict(counts),
        "chunks": [chunk_entry(c) for c in chunks], "outputs": [dict(o) for o in outputs],
        "startedAt": started_at, "endedAt": ended_at,
    }


def failed_marker(*, instance_id: str, input_name: str, code: str, message: str,
                  chunks: Iterable[Mapping[str, Any]] = (),
                  outputs: Iterable[Mapping[str, Any]] = (), started_at: str | None = None,
                  ended_at: str | None = None, etag: str | None = None,
                  size: int | None = None, container: str | None = None,
                  counts: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The ``_FAILED`` document: a stable code, a plain sentence, the failing chunks.

    ``outputs`` lists partial results kept (``results.json``/``errors.txt`` when merged).
    """
    chunk_list = [chunk_entry(c) for c in chunks]
    return {
        "kind": FAILED, "code": code if code in CODES else INTERNAL_ERROR, "message": message,
        "instanceId": instance_id,
        "input": {"container": container, "name": input_name, "etag": etag, "size": size},
        "failedChunks": [c for c in chunk_list if c["status"] != "Succeeded"],
        "chunks": chunk_list, "partialResults": [dict(o) for o in outputs],
        "counts": dict(counts or {}), "startedAt": started_at, "endedAt": ended_at,
    }


def _scrub(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _scrub(v) for k, v in value.items() if k not in _SECRET_KEYS}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


def marker_blob_name(kind: str, input_name: str) -> str:
    """Name of the marker of ``kind`` for an input."""
    if kind == SUCCESS:
        return naming.success_marker_blob(input_name)
    if kind == FAILED:
        return naming.failed_marker_blob(input_name)
    raise ValueError(f"marker kind must be one of {', '.join(KINDS)}, got {kind!r}")


def write_marker(container: ContainerClient, kind: str, input_name: str,
                 marker: Mapping[str, Any], now: datetime | None = None) -> str:
    """Write the marker (after the data), remove a stale one of the other kind; return its name.

    The caller must have checked that the run's input blob version is still current
    (:func:`recobatch.storage.ensure_current`), so the other kind's marker is stale.

    Secrets (SAS query parameters, key fields) are scrubbed from the document first.
    """
    name = marker_blob_name(kind, input_name)
    document = _scrub(dict(marker))
    document["kind"] = kind
    document.setdefault("inputName", input_name)
    document["writtenAt"] = (now or datetime.now(UTC)).isoformat()
    body = json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8")
    other = marker_blob_name(FAILED if kind == SUCCESS else SUCCESS, input_name)
    try:
        container.upload_blob(name, body, overwrite=True,
                              content_settings=ContentSettings(content_type="application/json"))
        try:
            container.delete_blob(other)
        except ResourceNotFoundError:
            pass
    except AzureError as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0].split("?", 1)[0]
        raise StorageError(f"cannot write marker {name}: {safe_text(first, 200)}") from None
    return name
