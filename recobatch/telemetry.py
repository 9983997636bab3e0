"""Traces, metrics and log ids of the function app (OpenTelemetry), off unless configured.

:func:`configure` (called once by ``function_app.py`` at import) sets up exporting only when an
operator asked for it:

- ``APPLICATIONINSIGHTS_CONNECTION_STRING`` set: ``azure-monitor-opentelemetry``'s
  ``configure_azure_monitor`` (imported only then), with the ``requests``, ``urllib`` and
  ``urllib3`` instrumentations off: the upstream calls get this module's spans (route templates,
  never a raw URL), and a raw URL of the completion webhook may carry a key. When the Functions
  worker already configured the distro (``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY``), its
  providers are used as they are.
- ``RECOBATCH_TRACE_FILE`` set: every ended span is appended to that local file as one JSON
  line (:class:`JsonLinesSpanExporter`); for tests and local diagnosis, never a network sink.
- neither: nothing is configured; the OpenTelemetry API's no-op tracer and meter stay in place.

What is recorded (names in ``docs/design.md``, *Telemetry*):

- a span ``activity <name>`` per activity call (:func:`activity_span`), attributes
  ``recobatch.instance_id``, ``recobatch.chunk``, ``recobatch.operation_id`` when the payload
  names them; activities run once per call, and orchestrators record nothing, so Durable
  replays add no span;
- a span ``<METHOD> <route template>`` (kind CLIENT) per upstream HTTP call
  (:func:`upstream_span`): method, template, status, attempts, operation id, and the ids of the
  activity it runs in;
- metrics (:class:`Instruments`): ``recobatch.requests_scored``,
  ``recobatch.chunk_duration_seconds``, ``recobatch.upstream_waits``,
  ``recobatch.polls_per_job``;
- log records made inside an activity carry ``recobatch.instance_id`` / ``recobatch.chunk``,
  and every record's text is redacted (:func:`recobatch.limits.redact`: the app's keys, SAS
  query parameters) once telemetry is configured.

No attribute, event or log text holds a key or a SAS: attributes are ids, names, numbers and
error messages passed through :func:`~recobatch.limits.safe_text` with the app's secrets.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from recobatch.errors import code_of
from recobatch.limits import redact, safe_text

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

CONNECTION_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
AUTHENTICATION_SETTING = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"
TRACE_FILE_SETTING = "RECOBATCH_TRACE_FILE"
SCOPE = "recobatch"
# The distro's instrumentations that would record raw URLs of the app's own HTTP calls (the
# upstream calls have this module's spans; a completion webhook's URL may hold its key).
RAW_URL_INSTRUMENTATIONS = ("requests", "urllib", "urllib3")

INSTANCE_ID = "recobatch.instance_id"
CHUNK = "recobatch.chunk"
OPERATION_ID = "recobatch.operation_id"
ACTIVITY = "recobatch.activity"
ERROR_CODE = "recobatch.error_code"
ATTEMPTS = "recobatch.attempts"
RETRY_AFTER = "recobatch.retry_after_seconds"
# OpenTelemetry HTTP client semantic conventions (stable since 1.23).
HTTP_METHOD = "http.request.method"
HTTP_STATUS = "http.response.status_code"
URL_TEMPLATE = "url.template"
URL_FULL = "url.full"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"

# Answers to a submit that make the chunk wait and submit again (recobatch.upstream_waits).
BUSY_STATUSES = (409, 429)
TERMINAL_STATUSES = ("Succeeded", "Failed", "Cancelled")
# Longest error text kept in a span (after redaction).
MAX_ERROR_TEXT = 300

# The ids of the activity call running in this thread/task: read by spans and log records.
_IDS: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "recobatch_ids", default=None)


class Instruments:
    """The app's metrics, made from one meter.

    Parameters
    ----------
    meter : opentelemetry.metrics.Meter
    """

    def __init__(self, meter: metrics.Meter) -> None:
        self.requests_scored = meter.create_counter(
            "recobatch.requests_scored", unit="{request}",
            description="Requests with a result in a run's merged results file.")
        self.chunk_duration = meter.create_histogram(
            "recobatch.chunk_duration_seconds", unit="s",
            description="Time from a chunk's first submit to its verified output (or its end).")
        self.upstream_waits = meter.create_counter(
            "recobatch.upstream_waits", unit="{wait}",
            description="Batch job submits answered busy (409/429): each is a durable-timer "
                        "wait before the chunk submits again.")
        self.polls_per_job = meter.create_histogram(
            "recobatch.polls_per_job", unit="{poll}",
            description="Status checks of a batch job until it ended, as counted by the "
                        "process that saw it end.")


class _State:
    """The tracer and instruments in use (the global providers', or a test's)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.configured: str | None = None
        self.secrets: tuple[str, ...] = ()
        self.bind()

    def bind(self, tracer_provider: trace.TracerProvider | None = None,
             meter_provider: metrics.MeterProvider | None = None) -> None:
        # Without a provider, the API's proxies: they start recording once a global provider
        # is set (configure), and cost nothing before.
        self.tracer = (tracer_provider.get_tracer(SCOPE) if tracer_provider
                       else trace.get_tracer(SCOPE))
        self.instruments = Instruments(meter_provider.get_meter(SCOPE) if meter_provider
                                       else metrics.get_meter(SCOPE))


_state = _State()


def use_providers(tracer_provider: trace.TracerProvider | None = None,
                  meter_provider: metrics.MeterProvider | None = None) -> None:
    """Record with these providers instead of the global ones (``None``: the global ones).

    For tests in one process, where the global providers can be set only once.
    """
    _state.bind(tracer_provider, meter_provider)


def current_ids() -> Mapping[str, str]:
    """The ids (``recobatch.instance_id``, ``recobatch.chunk``, ``recobatch.operation_id``) of
    the activity call running here; empty outside one."""
    return _IDS.get() or {}


def ids_of(payload: Any) -> dict[str, str]:
    """The run's instance id, chunk name and operation id an activity payload names.

    ``write_marker`` carries the instance id inside its ``marker``; a chunk given as a number
    or ``{name}`` is named as :func:`recobatch.naming.chunk_name` names it.
    """
    if not isinstance(payload, Mapping):
        return {}
    ids: dict[str, str] = {}
    instance = payload.get("instanceId")
    marker = payload.get("marker")
    if not isinstance(instance, str) and isinstance(marker, Mapping):
        instance = marker.get("instanceId")
    if isinstance(instance, str) and instance:
        ids[INSTANCE_ID] = instance
    chunk = payload.get("chunk")
    if chunk is not None:
        from recobatch import naming  # naming stays out of the import of this module

        try:
            ids[CHUNK] = naming.chunk_name(chunk)
        except Exception:  # an invalid chunk: the activity itself refuses it
            pass
    operation = payload.get("operationId")
    if isinstance(operation, str) and operation:
        ids[OPERATION_ID] = operation
    return ids


def _error_text(exc: BaseException) -> str:
    return safe_text(f"{type(exc).__name__}: {exc}", MAX_ERROR_TEXT, _state.secrets)


def _fail(span: trace.Span, exc: BaseException) -> None:
    """Mark ``span`` failed with the error's code and redacted text (no stack, no locals)."""
    text = _error_text(exc)
    span.set_attribute(ERROR_TYPE, type(exc).__name__)
    span.set_attribute(ERROR_CODE, code_of(exc))
    span.add_event("exception", {"exception.type": type(exc).__name__,
                                 "exception.message": text})
    span.set_status(Status(StatusCode.ERROR, text))


@contextmanager
def activity_span(name: str, payload: Any) -> Iterator[trace.Span]:
    """One span ``activity <name>`` around an activity call, with the payload's ids, which
    are also the ids of the log records and upstream spans made inside it."""
    ids = ids_of(payload)
    token = _IDS.set(ids)
    try:
        with _state.tracer.start_as_current_span(
                f"activity {name}", kind=SpanKind.INTERNAL,
                attributes={ACTIVITY: name, **ids}, record_exception=False,
                set_status_on_exception=False) as span:
            try:
                yield span
            except BaseException as exc:
                _fail(span, exc)
                raise
    finally:
        _IDS.reset(token)


def traced_activity(fn: Callable[..., Any], name: str, input_name: str) -> Callable[..., Any]:
    """``fn`` (an activity function) in an :func:`activity_span`, its metrics observed after.

    The wrapper has ``fn``'s name, signature and annotations (``functools.wraps``), which is
    what the worker's indexing and devhost read.
    """
    def payload_of(args: tuple, kwargs: dict) -> Any:
        return kwargs[input_name] if input_name in kwargs else (args[0] if args else None)

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def traced_async(*args: Any, **kwargs: Any) -> Any:
            payload = payload_of(args, kwargs)
            with activity_span(name, payload):
                result = await fn(*args, **kwargs)
                observe(name, payload, result)
                return result

        return traced_async

    @functools.wraps(fn)
    def traced(*args: Any, **kwargs: Any) -> Any:
        payload = payload_of(args, kwargs)
        with activity_span(name, payload):
            result = fn(*args, **kwargs)
            observe(name, payload, result)
            return result

    return traced


class UpstreamCall:
    """What :func:`upstream_span` yields: record the answer or the failure of the call."""

    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def answered(self, status: int, attempts: int = 1,
                 retry_after: float | None = None) -> None:
        self.span.set_attribute(HTTP_STATUS, status)
        self.span.set_attribute(ATTEMPTS, attempts)
        if retry_after is not None:
            self.span.set_attribute(RETRY_AFTER, retry_after)
        if status >= 400:
            self.span.set_attribute(ERROR_TYPE, str(status))
            self.span.set_status(Status(StatusCode.ERROR))

    def failed(self, exc: BaseException) -> None:
        _fail(self.span, exc)


@contextmanager
def upstream_span(method: str, template: str, endpoint: str,
                  operation_id: str | None = None) -> Iterator[UpstreamCall]:
    """One CLIENT span ``<METHOD> <template>`` around an upstream HTTP call.

    ``template`` is the route with placeholders (``/operations/{operationId}``) under the
    service's base URL ``endpoint``. The span's ``url.full`` is that base (scheme, host, port,
    path: never user information or a query) followed by the template, so Application
    Insights names the dependency by its route; ids go in attributes.
    """
    parts = urlsplit(endpoint)
    attributes: dict[str, Any] = {HTTP_METHOD: method, URL_TEMPLATE: template,
                                  **current_ids()}
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.hostname:
        attributes[SERVER_ADDRESS] = parts.hostname
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        netloc = f"{host}:{port}" if port else host
        attributes[URL_FULL] = f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}{template}"
    if port:
        attributes[SERVER_PORT] = port
    if operation_id:
        attributes[OPERATION_ID] = operation_id
    with _state.tracer.start_as_current_span(
            f"{method} {template}", kind=SpanKind.CLIENT, attributes=attributes,
            record_exception=False, set_status_on_exception=False) as span:
        yield UpstreamCall(span)


def upstream_retry(status: int | None, error: BaseException | None) -> None:
    """An event ``retry`` on the running upstream span: the attempt that failed (its status,
    or its error's type) is tried again by the client's own retry policy."""
    attributes: dict[str, Any] = {HTTP_STATUS: status} if status else {}
    if error is not None:
        attributes[ERROR_TYPE] = type(error).__name__
    trace.get_current_span().add_event("retry", attributes)


def upstream_wait(status: int | None) -> None:
    """Count a busy answer to a submit (the chunk waits on a durable timer, then submits)."""
    _state.instruments.upstream_waits.add(1, {HTTP_STATUS: status or 0})


def observe(name: str, payload: Any, result: Any) -> None:
    """Record the metrics an activity's successful answer tells (see :class:`Instruments`)."""
    if not isinstance(payload, Mapping) or not isinstance(result, Mapping):
        return
    observer = _OBSERVERS.get(name)
    if observer is not None:
        try:
            observer(payload, result)
        except Exception:  # a metric never fails the activity
            logging.getLogger(__name__).debug("metric of %s not recorded", name, exc_info=True)


def _scored(payload: Mapping[str, Any], result: Mapping[str, Any]) -> None:
    results = (result.get("counts") or {}).get("results")
    if isinstance(results, int) and results > 0:
        _state.instruments.requests_scored.add(results)


def _chunk_durations(payload: Mapping[str, Any], result: Mapping[str, Any]) -> None:
    marker = payload.get("marker") or {}
    for chunk in marker.get("chunks") or ():
        seconds = chunk.get("durationSeconds") if isinstance(chunk, Mapping) else None
        # a re-run's reused chunk ran in the earlier run, which recorded it
        if isinstance(seconds, int | float) and not chunk.get("reused"):
            _state.instruments.chunk_duration.record(
                float(seconds), {"recobatch.chunk_status": str(chunk.get("status"))})


def _poll(payload: Mapping[str, Any], result: Mapping[str, Any]) -> None:
    # The chunk orchestrator numbers its polls (carried across continue-as-new), so the
    # number of the poll that sees the job end is exact whichever instance polled before.
    number = payload.get("poll")
    if (result.get("status") in TERMINAL_STATUSES and isinstance(number, int)
            and not isinstance(number, bool) and number > 0):
        _state.instruments.polls_per_job.record(number, {"recobatch.job_status":
                                                         str(result.get("status"))})


_OBSERVERS: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], None]] = {
    "merge_results": _scored,
    "write_marker": _chunk_durations,
    "check_operation": _poll,
}


# --- configuration -------------------------------------------------------------------------

def app_secrets(env: Mapping[str, str]) -> tuple[str, ...]:
    """The secret values among the app settings, to redact from log and span text."""
    found = [env.get(name) for name in ("RECO_SUBSCRIPTION_KEY", "BATCH_NOTIFY_SECRET",
                                        "AzureWebJobsStorage__clientSecret")]
    for part in (env.get("AzureWebJobsStorage") or "").split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() in ("accountkey", "sharedaccesssignature"):
            found.append(value.strip())
    notify = env.get("BATCH_NOTIFY_URL") or ""
    if "?" in notify:
        found.append(notify.split("?", 1)[1])  # a webhook's query may be its key
    return tuple(sorted({s.strip() for s in found if s and len(s.strip()) >= 4},
                        key=len, reverse=True))


def install_log_context(env: Mapping[str, str]) -> None:
    """Make every log record carry the running activity's ids, its text redacted of the
    secrets among ``env``'s settings (:func:`app_secrets`) and of SAS query parameters."""
    _state.secrets = app_secrets(env)
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_recobatch", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        for key, value in current_ids().items():
            setattr(record, key, value)
        try:
            text = record.getMessage()
        except Exception:  # a bad format: logging reports it when the record is emitted
            return record
        clean = redact(text, _state.secrets)
        if clean != text:
            record.msg, record.args = clean, None
        return record

    factory._recobatch = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def monitor_credential(env: Mapping[str, str]) -> Any:
    """The managed identity to send telemetry with when ``APPLICATIONINSIGHTS_AUTHENTICATION_
    STRING`` asks for Microsoft Entra authentication (``Authorization=AAD``, optional
    ``ClientId=<user-assigned identity>``), as the Functions host reads it; else ``None`` (the
    connection string's key). The deployed Application Insights refuses local authentication.
    """
    fields = {}
    for part in (env.get(AUTHENTICATION_SETTING) or "").split(";"):
        key, _, value = part.partition("=")
        fields[key.strip().lower()] = value.strip()
    if fields.get("authorization", "").upper() != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    client_id = fields.get("clientid")
    return ManagedIdentityCredential(client_id=client_id) if client_id else \
        ManagedIdentityCredential()


def _sdk_provider_set() -> bool:
    """True when something (the Functions worker, a test) already set a real tracer
    provider: the API's default is a proxy."""
    return type(trace.get_tracer_provider()).__name__ not in ("ProxyTracerProvider",
                                                                "NoOpTracerProvider")


def configure(env: Mapping[str, str] | None = None) -> str | None:
    """Set up exporting as the settings ask (see the module docstring); once per process.

    Returns what was set up: ``"azure-monitor"``, ``"worker"`` (the worker's distro was
    already there), ``"file"``, ``"azure-monitor+file"``, ``"worker+file"``, ``None`` (not
    asked) or ``""`` (asked, but the distro refused its settings: logged as a warning, and
    the app runs on without telemetry).
    """
    env = os.environ if env is None else env
    with _state.lock:
        if _state.configured is not None:
            return _state.configured
        connection = (env.get(CONNECTION_SETTING) or "").strip()
        trace_file = (env.get(TRACE_FILE_SETTING) or "").strip()
        if not connection and not trace_file:
            return None
        install_log_context(env)
        parts = []
        if connection:
            if _sdk_provider_set():
                parts.append("worker")
            else:
                try:
                    from azure.monitor.opentelemetry import configure_azure_monitor

                    # The distro samples 5 traces a second unless told otherwise, which
                    # dropped upstream spans of sampled activity spans: the app makes a few
                    # spans a poll, so all are kept unless OTEL_TRACES_SAMPLER says otherwise.
                    sampling = {} if env.get("OTEL_TRACES_SAMPLER") else {"sampling_ratio": 1.0}
                    configure_azure_monitor(
                        connection_string=connection, credential=monitor_credential(env),
                        instrumentation_options={name: {"enabled": False}
                                                 for name in RAW_URL_INSTRUMENTATIONS},
                        **sampling)
                    parts.append("azure-monitor")
                except Exception as exc:  # telemetry never keeps the app from starting
                    logging.getLogger(__name__).warning(
                        "telemetry: Application Insights is not configured (%s: %s)",
                        type(exc).__name__, safe_text(str(exc), MAX_ERROR_TEXT,
                                                      (*_state.secrets, connection)))
        if trace_file:
            _add_file_exporter(trace_file)
            parts.append("file")
        _state.configured = "+".join(parts)
        _state.bind()
        return _state.configured


def _add_file_exporter(path: str) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = cast("SpanExporter", JsonLinesSpanExporter(path))  # the SpanExporter protocol
    provider.add_span_processor(SimpleSpanProcessor(exporter))


def span_record(span: Any) -> dict[str, Any]:
    """A finished span as the JSON object :class:`JsonLinesSpanExporter` writes."""
    context = span.get_span_context()
    return {
        "name": span.name, "kind": span.kind.name,
        "traceId": f"{context.trace_id:032x}", "spanId": f"{context.span_id:016x}",
        "parentId": f"{span.parent.span_id:016x}" if span.parent else None,
        "start": span.start_time, "end": span.end_time,
        "status": span.status.status_code.name, "statusText": span.status.description,
        "attributes": dict(span.attributes or {}),
        "events": [{"name": e.name, "attributes": dict(e.attributes or {})}
                   for e in span.events],
    }


class JsonLinesSpanExporter:
    """Appends each finished span to a local file, one JSON object a line (mode 0600).

    Only a path on this machine, set by whoever runs the app: never a network sink.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        lines = "".join(json.dumps(span_record(s), default=str) + "\n" for s in spans)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as out:
                out.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
