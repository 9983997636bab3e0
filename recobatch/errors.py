"""The recobatch error tree: one stable code per failure kind.

::

    RecobatchError                      (base; never raised itself)
    ├── ConfigurationError              ConfigurationError   an app setting is missing or invalid
    ├── InputError                      InvalidInput         the requests file is unusable
    │   └── InputTooLargeError          InputTooLarge        ... over BATCH_MAX_INPUT_BYTES
    ├── StorageError                    StorageError         a blob operation failed
    ├── OutputInvalidError              OutputInvalid        the job's output blob is not usable
    ├── JobTimedOutError                JobTimedOut          a job outlived JOB_TIMEOUT_MINUTES
    ├── CancelledError                  Cancelled            the run was cancelled
    ├── SupersededError                 Superseded           a newer upload replaced the input
    └── UpstreamError                   (status, error_code, operation_id)
        ├── UpstreamRejected            UpstreamRejected     401/403/400/404: retrying won't help
        ├── TransientError              UpstreamUnavailable  5xx, timeout, connection error
        │   └── BusyError               UpstreamUnavailable  409/429: another job runs (retry_after)
        └── JobFailedError              UpstreamJobFailed    the batch job ended Failed

``str(exc)`` is always ``"<Code>: <plain sentence>"``. The Durable SDK only carries the message
of an activity failure to the orchestrator, so :func:`code_of` recovers the code from that text.
Messages never contain subscription keys, account keys or SAS tokens.
"""

from __future__ import annotations

import re

CONFIGURATION_ERROR = "ConfigurationError"
INVALID_INPUT = "InvalidInput"
INPUT_TOO_LARGE = "InputTooLarge"
UPSTREAM_REJECTED = "UpstreamRejected"
UPSTREAM_UNAVAILABLE = "UpstreamUnavailable"
UPSTREAM_JOB_FAILED = "UpstreamJobFailed"
OUTPUT_INVALID = "OutputInvalid"
JOB_TIMED_OUT = "JobTimedOut"
CANCELLED = "Cancelled"
SUPERSEDED = "Superseded"
STORAGE_ERROR = "StorageError"
# Not a designed failure: any exception that is not a RecobatchError (a bug).
INTERNAL_ERROR = "InternalError"

CODES: tuple[str, ...] = (
    INVALID_INPUT, INPUT_TOO_LARGE, UPSTREAM_REJECTED, UPSTREAM_UNAVAILABLE, UPSTREAM_JOB_FAILED,
    OUTPUT_INVALID, JOB_TIMED_OUT, CANCELLED, CONFIGURATION_ERROR, STORAGE_ERROR, SUPERSEDED,
)

# Longest first so "InputTooLarge" is never read as a shorter code. The host wraps an activity's
# exception as "Activity function 'x' failed:  <ClassName>: <str(exc)>", and for StorageError and
# ConfigurationError the class name is the code itself: the code is the last of such a run.
_CODES_ALT = "|".join(sorted(CODES, key=len, reverse=True))
_CODE_RE = re.compile(r"\b(" + _CODES_ALT + r"):")
_NEXT_CODE_RE = re.compile(r"\s*\b(" + _CODES_ALT + r"):")


def _find_code(text: str) -> re.Match[str] | None:
    match = _CODE_RE.search(text)
    while match is not None and (following := _NEXT_CODE_RE.match(text, match.end())):
        match = following
    return match


class RecobatchError(Exception):
    """Base of every failure recobatch raises on purpose.

    Parameters
    ----------
    message : str
        A plain sentence for people; the code is prefixed by ``str(exc)``.
    """

    code: str = INTERNAL_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ConfigurationError(RecobatchError):
    """An app setting is missing or has an invalid value (the message names it)."""

    code = CONFIGURATION_ERROR


class InputError(RecobatchError):
    """The requests file cannot be used at all (bad JSON, wrong shape, no valid request)."""

    code = INVALID_INPUT


class InputTooLargeError(InputError):
    """The requests file is larger than ``BATCH_MAX_INPUT_BYTES``."""

    code = INPUT_TOO_LARGE


class StorageError(RecobatchError):
    """A blob storage operation failed."""

    code = STORAGE_ERROR


class OutputInvalidError(RecobatchError):
    """A job's output blob is missing its shape or does not match its input."""

    code = OUTPUT_INVALID


class JobTimedOutError(RecobatchError):
    """A batch job did not finish within ``JOB_TIMEOUT_MINUTES``."""

    code = JOB_TIMED_OUT


class CancelledError(RecobatchError):
    """The run was cancelled on request."""

    code = CANCELLED


class SupersededError(RecobatchError):
    """The run's input blob was replaced by a newer upload (or deleted): it must not write.

    Raised before anything is written to the output folder, which the newer upload's run owns.
    """

    code = SUPERSEDED


class UpstreamError(RecobatchError):
    """The Recommendations service answered with a failure.

    Parameters
    ----------
    message : str
        A plain sentence (never the key or a SAS token).
    status : int, optional
        HTTP status code, when there was a response.
    error_code : str, optional
        The service's own error code (``{"error": {"code": ...}}``).
    operation_id : str, optional
        The operation the failure belongs to, when known.
    """

    code = UPSTREAM_REJECTED

    def __init__(self, message: str, *, status: int | None = None,
                 error_code: str | None = None, operation_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.operation_id = operation_id


class UpstreamRejected(UpstreamError):
    """The service refused the call (auth, bad request, not found): retrying will not help."""

    code = UPSTREAM_REJECTED


class TransientError(UpstreamError):
    """The service is unavailable for now (5xx, timeout, connection error)."""

    code = UPSTREAM_UNAVAILABLE


class BusyError(TransientError):
    """The service is busy (409: a job of this subscription runs; 429: throttled).

    Parameters
    ----------
    retry_after : float, optional
        Seconds the service asked to wait (``Retry-After``), when given.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class JobFailedError(UpstreamError):
    """The batch job ended ``Failed``."""

    code = UPSTREAM_JOB_FAILED


# One plain sentence per code, for answers that must not carry a failure's own text (a run's
# status over HTTP: the host's failure text holds the exception type and the traceback).
SUMMARIES: dict[str, str] = {
    CONFIGURATION_ERROR: "an app setting is missing or invalid; see the function app's logs.",
    INVALID_INPUT: "the requests file is not usable.",
    INPUT_TOO_LARGE: "the requests file is larger than BATCH_MAX_INPUT_BYTES.",
    UPSTREAM_REJECTED: "the Recommendations service refused the batch job.",
    UPSTREAM_UNAVAILABLE: "the Recommendations service was unavailable.",
    UPSTREAM_JOB_FAILED: "a batch job failed in the Recommendations service.",
    OUTPUT_INVALID: "a batch job's output was missing or not valid.",
    JOB_TIMED_OUT: "a batch job did not finish within JOB_TIMEOUT_MINUTES.",
    CANCELLED: "the run was cancelled.",
    SUPERSEDED: "a newer upload of the input blob owns the output folder.",
    STORAGE_ERROR: "a blob storage operation failed; see the function app's logs.",
    INTERNAL_ERROR: "the run failed unexpectedly; see the function app's logs.",
}


def summary(code: str) -> str:
    """The fixed sentence of a code (:data:`SUMMARIES`), for text shown outside the app."""
    return SUMMARIES.get(code, SUMMARIES[INTERNAL_ERROR])


def code_of(error: BaseException | str | None) -> str:
    """Return the stable error code of an exception or of a failure message.

    Parameters
    ----------
    error : BaseException or str or None
        A raised exception, or the message text the Durable SDK hands to an orchestrator.

    Returns
    -------
    str
        One of :data:`CODES`, or ``"InternalError"`` when no code can be found.
    """
    if isinstance(error, RecobatchError):
        return error.code
    text = str(error) if error is not None else ""
    match = _find_code(text)
    return match.group(1) if match else INTERNAL_ERROR


def message_of(error: BaseException | str | None) -> str:
    """Return the plain sentence of a failure, without its code prefix or SDK wrapping."""
    if isinstance(error, RecobatchError):
        return error.message
    text = str(error) if error is not None else ""
    match = _find_code(text)
    return text[match.end():].strip() if match else text.strip()
