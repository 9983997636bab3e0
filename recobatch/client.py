"""The Recommendations API v4.0 batch client: submit, track and cancel batch jobs.

One :class:`requests.Session` per client, with a urllib3 ``Retry`` policy for idempotent calls
(GET, DELETE: 5xx and connection errors) and a timeout on every call. :func:`raise_for_response`
is the one place an HTTP answer becomes a typed error:

======================  ==========================================================
401, 403                ``UpstreamRejected`` (the key is wrong or lacks access)
400, 404, other 4xx     ``UpstreamRejected``
409, 429                ``BusyError`` (``retry_after`` from ``Retry-After``)
5xx                     ``TransientError`` (code ``UpstreamUnavailable``)
timeout, no connection  ``TransientError``
======================  ==========================================================

Messages never hold the subscription key or a SAS token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Self

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from recobatch import telemetry
from recobatch.errors import (
    BusyError,
    TransientError,
    UpstreamError,
    UpstreamRejected,
)
from recobatch.limits import redact, safe_text
from recobatch.storage import BlobLocation

KEY_HEADER = "Ocp-Apim-Subscription-Key"
DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
# Longest service error message kept in an exception (after redaction).
MAX_UPSTREAM_MESSAGE = 500
# Route template of the operation calls (spans name the route, never the URL).
OPERATION_ROUTE = "/operations/{operationId}"


@dataclass(frozen=True)
class Submission:
    """An accepted batch job: its operation id (to track) and batch id."""

    operation_id: str
    batch_id: str


@dataclass(frozen=True)
class Operation:
    """The state of an operation (``GET /operations/{id}``)."""

    status: str
    percent_complete: int
    message: str
    result: Any = None


class RecoClient:
    """A client of one Recommendations endpoint with one subscription key.

    Parameters
    ----------
    endpoint : str
        Base URL ending with ``/recommendations/v4.0``.
    key : str
        Subscription key (sent as a header, never shown).
    timeout : tuple of float
        (connect, read) timeout of every call, in seconds.
    retries : int
        Retries of idempotent calls on 5xx and connection errors.
    """

    def __init__(self, endpoint: str, key: str, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 retries: int = 3, backoff: float = 0.5) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._key = key
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers[KEY_HEADER] = key
        retry = _RecordedRetry(total=retries, connect=retries, read=retries, status=retries,
                               backoff_factor=backoff, status_forcelist=(500, 502, 503, 504),
                               allowed_methods=frozenset({"GET", "DELETE"}),
                               raise_on_status=False, respect_retry_after_header=False)
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def __repr__(self) -> str:
        return f"RecoClient({self.endpoint!r})"

    def close(self) -> None:
        self.session.close()

    def _call(self, method: str, path: str, operation_id: str | None = None,
              template: str | None = None, **kwargs: Any) -> requests.Response:
        """One call, in a telemetry span named by the route ``template`` (``path`` when it
        has no variable part): the span never holds the URL, the body or the key."""
        url = f"{self.endpoint}{path}"
        with telemetry.upstream_span(method, template or path, self.endpoint,
                                     operation_id) as call:
            try:
                resp = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except requests.RequestException as exc:
                error = _transport_error(exc, method, path, self.timeout[1], operation_id)
                call.failed(error)
                raise error from None
            call.answered(resp.status_code, _attempts(resp),
                          retry_after_seconds(resp.headers.get("Retry-After"))
                          if resp.status_code in telemetry.BUSY_STATUSES else None)
            raise_for_response(resp, operation_id=operation_id, secrets=(self._key,))
        return resp

    def submit_batch(self, input: BlobLocation, output: BlobLocation, error: BlobLocation,
                     job: dict[str, Any]) -> Submission:
        """``POST /batchjobs``; raises ``BusyError`` when another job of the key runs."""
        body = {"input": input.to_dict(), "output": output.to_dict(), "error": error.to_dict(),
                "job": job}
        try:
            resp = self._call("POST", "/batchjobs", json=body)
        except BusyError as exc:
            telemetry.upstream_wait(exc.status)  # the chunk waits on a durable timer
            raise
        location = resp.headers.get("Operation-Location", "")
        operation_id = location.rstrip("/").rsplit("/", 1)[-1]
        if not operation_id:
            raise TransientError("the Recommendations service accepted the job without an "
                                 "Operation-Location header.", status=resp.status_code)
        try:
            batch_id = str(resp.json().get("batchId", ""))
        except ValueError:
            batch_id = ""
        return Submission(operation_id=operation_id, batch_id=batch_id)

    def get_operation(self, operation_id: str) -> Operation:
        """``GET /operations/{id}``."""
        resp = self._call("GET", f"/operations/{operation_id}", operation_id=operation_id,
                          template=OPERATION_ROUTE)
        try:
            body = resp.json()
        except ValueError:
            raise TransientError("the Recommendations service answered an operation status "
                                 "that is not JSON.", status=resp.status_code,
                                 operation_id=operation_id) from None
        return Operation(status=str(body.get("status", "")),
                         percent_complete=int(body.get("percentComplete") or 0),
                         message=safe_text(str(body.get("message") or ""),
                                           MAX_UPSTREAM_MESSAGE, (self._key,)),
                         result=body.get("result"))

    def cancel_operation(self, operation_id: str) -> bool:
        """``DELETE /operations/{id}``; ``False`` when the operation had already ended (409)."""
        try:
            self._call("DELETE", f"/operations/{operation_id}", operation_id=operation_id,
                       template=OPERATION_ROUTE)
        except BusyError as exc:
            if exc.status == 409:
                return False
            raise
        return True


def raise_for_response(resp: requests.Response, operation_id: str | None = None,
                       secrets: tuple[str, ...] = ()) -> None:
    """Raise the typed error an HTTP answer means; return for 2xx/3xx.

    Parameters
    ----------
    resp : requests.Response
    operation_id : str, optional
        Attached to the error.
    secrets : tuple of str
        Strings to remove from the service's message (the key).
    """
    status = resp.status_code
    if status < 400:
        return
    error_code, text = _error_body(resp)
    text = safe_text(text, MAX_UPSTREAM_MESSAGE, secrets)  # redact first, then cut
    where = f"{resp.request.method} {_path(resp)}" if resp.request is not None else "the call"
    detail = f" ({error_code}: {text})" if text else (f" ({error_code})" if error_code else "")
    info: dict[str, Any] = {"status": status, "error_code": error_code,
                            "operation_id": operation_id}
    if status in (401, 403):
        raise UpstreamRejected(f"the Recommendations service refused the subscription key "
                               f"({status}) for {where}{detail}.", **info)
    if status in (409, 429):
        raise BusyError(f"the Recommendations service is busy ({status}) for {where}{detail}.",
                        retry_after=retry_after_seconds(resp.headers.get("Retry-After")), **info)
    if status >= 500:
        raise TransientError(f"the Recommendations service failed ({status}) for "
                             f"{where}{detail}.", **info)
    raise UpstreamRejected(f"the Recommendations service rejected {where} ({status})"
                           f"{detail}.", **info)


class _RecordedRetry(Retry):
    """urllib3's retry policy; each retry it grants is an event on the call's span."""

    def increment(self, method: str | None = None, url: str | None = None,
                  response: Any = None, error: Exception | None = None, _pool: Any = None,
                  _stacktrace: Any = None) -> Self:
        telemetry.upstream_retry(getattr(response, "status", None), error)
        return super().increment(method, url, response, error, _pool, _stacktrace)


def _attempts(resp: requests.Response) -> int:
    """HTTP attempts the call took: 1 + the urllib3 retries (5xx, connection) before this
    answer."""
    retries = getattr(getattr(resp, "raw", None), "retries", None)
    history = getattr(retries, "history", None) or ()
    return 1 + len(history)


def _transport_error(exc: requests.RequestException, method: str, path: str,
                     read_timeout: float, operation_id: str | None) -> TransientError:
    """A timeout or connection failure as ``TransientError`` (the URL is not shown)."""
    # After urllib3 retries, a read timeout arrives wrapped in requests.ConnectionError.
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(exc, requests.Timeout) or isinstance(reason, ReadTimeoutError):
        return TransientError(f"the Recommendations service did not answer {method} {path} "
                              f"within {read_timeout:g} s.", operation_id=operation_id)
    return TransientError(f"cannot reach the Recommendations service ({method} {path}): "
                          f"{type(exc).__name__}.", operation_id=operation_id)


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds or HTTP date); ``None`` if absent/bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_body(resp: requests.Response) -> tuple[str | None, str]:
    try:
        body = resp.json()
    except ValueError:
        return None, ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, ""
    code = error.get("code")
    return (str(code) if code else None), str(error.get("message") or "")


def _path(resp: requests.Response) -> str:
    url = str(resp.request.url or "") if resp.request is not None else ""
    path = url.split("?", 1)[0]
    marker = "/recommendations/v4.0"
    return path.split(marker, 1)[1] if marker in path else path


__all__ = ["RecoClient", "Submission", "Operation", "raise_for_response", "UpstreamError",
           "client_for", "redact"]


_clients: dict[tuple[str, str], RecoClient] = {}


def client_for(endpoint: str, key: str) -> RecoClient:
    """The process-wide client of an endpoint and key (one session, reused)."""
    client = _clients.get((endpoint, key))
    if client is None:
        client = _clients[(endpoint, key)] = RecoClient(endpoint, key)
    return client
