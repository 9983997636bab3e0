"""The completion notification: a signed CloudEvents 1.0 event POSTed after a run's marker.

The event is structured-mode CloudEvents JSON (``Content-Type: application/cloudevents+json``):
``specversion`` 1.0, ``id`` the run's instance id (a redelivery keeps it, so a consumer can
drop duplicates), ``type`` ``recobatch.run.succeeded`` or ``recobatch.run.failed``, ``source``
``/recobatch/<app name>``, ``subject`` the input blob (``<container>/<name>``), ``time`` the
marker's ``writtenAt``, ``datacontenttype`` ``application/json`` and ``data`` the marker
document as written. With a secret, header ``X-Recobatch-Signature: sha256=<hex>`` is the
HMAC-SHA256 of the exact body bytes (:func:`signature`); a receiver recomputes it over the
raw body and compares in constant time (:func:`verify`).

:func:`deliver` makes one attempt and says what to do next; the orchestrator retries on durable
timers (no sleep here). 2xx delivered; 5xx, 429, a timeout or no connection: try again; any
other answer (4xx, a redirect, which is not followed: the event goes to the configured host
only) stops. Messages name the host only, never the URL's path or query nor the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from recobatch.limits import safe_text

SIGNATURE_HEADER = "X-Recobatch-Signature"
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
EVENT_TYPES = {"success": "recobatch.run.succeeded", "failed": "recobatch.run.failed"}
# (connect, read) seconds of the one POST of an attempt.
TIMEOUT = (5.0, 30.0)
DELIVERED, RETRY, REFUSED = "Delivered", "Retry", "Refused"

_session: requests.Session | None = None


def _http() -> requests.Session:
    global _session
    if _session is None:
        _session = requests.Session()
        _session.trust_env = False  # no proxy from the environment: the host is the setting's
    return _session


def event(marker: Mapping[str, Any], app_name: str) -> dict[str, Any]:
    """The CloudEvent of a run, from its marker document as written."""
    source = marker.get("input") or {}
    subject = f"{source.get('container')}/{source.get('name') or marker.get('inputName')}"
    return {"specversion": "1.0", "id": str(marker.get("instanceId")),
            "type": EVENT_TYPES.get(str(marker.get("kind")), EVENT_TYPES["failed"]),
            "source": f"/recobatch/{app_name}", "subject": subject,
            "time": marker.get("writtenAt") or marker.get("endedAt"),
            "datacontenttype": "application/json", "data": dict(marker)}


def body_of(cloud_event: Mapping[str, Any]) -> bytes:
    """The exact bytes sent (and signed)."""
    return json.dumps(cloud_event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def signature(body: bytes, secret: str) -> str:
    """``sha256=<hex HMAC-SHA256 of body with secret>``, the signature header's value."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secret: str) -> bool:
    """What a receiver does: recompute over the raw body, compare in constant time."""
    return bool(header) and hmac.compare_digest(signature(body, secret), str(header))


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt: ``outcome`` Delivered|Retry|Refused, the HTTP status, a sentence."""

    outcome: str
    status: int | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "httpStatus": self.status, "message": self.message}


def host_of(url: str) -> str:
    """The URL's host, the only part of it messages show."""
    return urlsplit(url).hostname or "?"


def deliver(url: str, body: bytes, secret: str | None) -> Attempt:
    """POST ``body`` once; never raises for HTTP or network failures."""
    headers = {"Content-Type": CONTENT_TYPE}
    if secret:
        headers[SIGNATURE_HEADER] = signature(body, secret)
    host = host_of(url)
    try:
        resp = _http().post(url, data=body, headers=headers, timeout=TIMEOUT,
                            allow_redirects=False)
    except requests.RequestException as exc:
        return Attempt(RETRY, None, f"{host}: no answer ({type(exc).__name__}).")
    status = resp.status_code
    resp.close()
    if 200 <= status < 300:
        return Attempt(DELIVERED, status, f"{host} answered {status}.")
    reason = safe_text(resp.reason or "", 80, (secret or "",))
    if status >= 500 or status == 429:
        return Attempt(RETRY, status, f"{host} answered {status} {reason}".rstrip() + ".")
    return Attempt(REFUSED, status, f"{host} refused the event: {status} {reason}".rstrip()
                   + ".")
