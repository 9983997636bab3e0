"""Spans, metrics and log records, recorded in this process with the SDK's in-memory exporter
and metric reader, around real upstream calls to recoservice (its fault rules give the busy
answers)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from recobatch import telemetry
from recobatch.client import RecoClient
from recobatch.errors import BusyError, UpstreamRejected
from recobatch.storage import BlobLocation

RUN = "rb-0123456789abcdef0123456789abcdef"
SAS = "sv=2024-08-04&sr=b&sp=r&se=2030-01-01T00%3A00%3A00Z&sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"


@dataclass
class Recorded:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader

    def points(self, name: str) -> list:
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    telemetry.use_providers(tracer_provider, MeterProvider(metric_readers=[reader]))
    yield Recorded(spans, reader)
    telemetry.use_providers()


def _locations() -> tuple[BlobLocation, ...]:
    base = "http://127.0.0.1:10000/devstoreaccount1/"
    return tuple(BlobLocation(base, f"work/{RUN}/chunk-00001{suffix}", "?" + SAS)
                 for suffix in (".json", ".out.json", ".err.txt"))


def test_a_busy_submit_is_a_span_with_its_status_and_wait_and_counts_one_wait(recorded, reco):
    reco.set_faults([{"target": "submit", "action": "status", "status": 429, "retryAfter": 7}])
    client = RecoClient(reco.base_url, reco.key)

    with pytest.raises(BusyError):
        with telemetry.activity_span("submit_chunk", {"instanceId": RUN, "chunk": 1}):
            client.submit_batch(*_locations(), {"modelId": reco.demo_model_id})

    upstream, activity = recorded.spans.get_finished_spans()
    assert upstream.name == "POST /batchjobs" and upstream.parent.span_id == \
        activity.get_span_context().span_id
    assert dict(upstream.attributes) == {
        "http.request.method": "POST", "url.template": "/batchjobs",
        "url.full": reco.base_url + "/batchjobs", "server.address":
        "127.0.0.1", "server.port": int(reco.base_url.split(":")[2].split("/")[0]),
        "recobatch.instance_id": RUN, "recobatch.chunk": "chunk-00001",
        "http.response.status_code": 429, "recobatch.attempts": 1,
        "recobatch.retry_after_seconds": 7.0, "error.type": "429"}
    assert activity.attributes["recobatch.error_code"] == "UpstreamUnavailable"
    (wait,) = recorded.points("recobatch.upstream_waits")
    assert wait.value == 1 and dict(wait.attributes) == {"http.response.status_code": 429}


def test_span_text_holds_neither_the_key_nor_a_sas(recorded, reco):
    # the service echoes nothing secret, but a refusal's text passes through the span
    client = RecoClient(reco.base_url, "wrong-" + reco.key)

    with telemetry.activity_span("submit_chunk", {"instanceId": RUN, "chunk": "chunk-00002"}):
        with pytest.raises(UpstreamRejected):
            client.submit_batch(*_locations(), {"modelId": reco.demo_model_id})

    spans = recorded.spans.get_finished_spans()
    text = repr([(s.name, dict(s.attributes), [dict(e.attributes) for e in s.events],
                  s.status.description) for s in spans])
    assert "401" in text and RUN in text
    assert reco.key not in text and "sig=" not in text.lower() and "c2VjcmV0" not in text


def test_an_operation_poll_span_names_the_route_template_and_the_operation(recorded, reco):
    client = RecoClient(reco.base_url, reco.key)

    with telemetry.activity_span("check_operation", {"instanceId": RUN, "operationId": "op-9"}):
        with pytest.raises(UpstreamRejected):
            client.get_operation("op-9")

    upstream = recorded.spans.get_finished_spans()[0]
    assert upstream.name == "GET /operations/{operationId}"
    assert upstream.attributes["recobatch.operation_id"] == "op-9"
    assert upstream.attributes["http.response.status_code"] == 404
    assert "op-9" not in upstream.name  # the route, not the URL


def test_a_failed_activity_span_has_the_error_code_and_no_stack(recorded):
    def fails(payload: dict) -> dict:
        raise UpstreamRejected("the service refused it (400).")

    traced = telemetry.traced_activity(fails, "submit_chunk", "payload")

    with pytest.raises(UpstreamRejected):
        traced(payload={"instanceId": RUN, "chunk": 3})

    (span,) = recorded.spans.get_finished_spans()
    assert span.name == "activity submit_chunk" and span.status.status_code.name == "ERROR"
    assert span.attributes["recobatch.error_code"] == "UpstreamRejected"
    assert span.attributes["recobatch.chunk"] == "chunk-00003"
    (event,) = span.events
    assert set(event.attributes) == {"exception.type", "exception.message"}  # no stacktrace


def test_the_wrapper_keeps_the_activity_name_and_signature():
    import inspect

    def submit_chunk(payload: dict) -> dict:
        return payload

    traced = telemetry.traced_activity(submit_chunk, "submit_chunk", "payload")

    assert traced.__name__ == "submit_chunk"
    assert list(inspect.signature(traced).parameters) == ["payload"]
    assert traced({"a": 1}) == {"a": 1}


def test_metrics_of_a_run_scored_requests_chunk_durations_and_polls_per_job(recorded):
    marker = {"instanceId": RUN, "chunks": [
        {"name": "chunk-00001", "status": "Succeeded", "durationSeconds": 12.5},
        {"name": "chunk-00002", "status": "Failed", "durationSeconds": 3.0},
        {"name": "chunk-00003", "status": "Succeeded", "durationSeconds": 1.0, "reused": True}]}
    polls = [{"status": "Running"}, {"status": "Running"}, {"status": "Succeeded"}]

    for number, answer in enumerate(polls, 1):
        telemetry.observe("check_operation", {"operationId": "op-7", "poll": number}, answer)
    telemetry.observe("merge_results", {"instanceId": RUN}, {"counts": {"results": 41}})
    telemetry.observe("write_marker", {"marker": marker}, {"name": "x/_SUCCESS"})

    (scored,) = recorded.points("recobatch.requests_scored")
    assert scored.value == 41
    durations = {p.attributes["recobatch.chunk_status"]: (p.count, p.sum)
                 for p in recorded.points("recobatch.chunk_duration_seconds")}
    assert durations == {"Succeeded": (1, 12.5), "Failed": (1, 3.0)}  # the reused one: no
    (per_job,) = recorded.points("recobatch.polls_per_job")
    assert (per_job.count, per_job.sum) == (1, 3)


def test_polls_per_job_takes_the_orchestrator_s_poll_number(recorded):
    # polls 1..16 ran in another process (or before a continue-as-new): the number says so
    telemetry.observe("check_operation", {"operationId": "op-8", "poll": 16},
                      {"status": "Running"})
    telemetry.observe("check_operation", {"operationId": "op-8", "poll": 17},
                      {"status": "Succeeded"})
    (per_job,) = recorded.points("recobatch.polls_per_job")
    assert (per_job.count, per_job.sum) == (1, 17)
    assert per_job.attributes == {"recobatch.job_status": "Succeeded"}


@pytest.fixture
def log_factory() -> Iterator[None]:
    """The process's log-record factory, put back after the test (install_log_context sets
    its own, process-wide)."""
    before = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(before)


def test_log_records_in_an_activity_carry_its_ids_and_are_redacted(caplog, log_factory):
    key = "k3y-" + RUN[-12:]
    telemetry.install_log_context({"RECO_SUBSCRIPTION_KEY": key})
    log = logging.getLogger("activities.telemetry_test")

    with caplog.at_level(logging.INFO, logger="activities.telemetry_test"):
        with telemetry.activity_span("submit_chunk", {"instanceId": RUN, "chunk": 2}):
            log.info("sent %s with key %s to %s", "job", key, "https://a/b?" + SAS)
        log.info("outside")

    inside, outside = caplog.records
    assert getattr(inside, "recobatch.instance_id") == RUN
    assert getattr(inside, "recobatch.chunk") == "chunk-00002"
    assert key not in inside.getMessage() and "c2VjcmV0" not in inside.getMessage()
    assert "sig=***" in inside.getMessage()
    assert not hasattr(outside, "recobatch.instance_id")


def test_a_poll_the_client_retries_counts_its_attempts_and_records_each_retry(recorded, reco):
    client = RecoClient(reco.base_url, reco.key, backoff=0.01)
    reco.set_faults([{"target": "status", "action": "status", "status": 503, "count": 2}])

    with telemetry.activity_span("check_operation", {"instanceId": RUN, "operationId": "op-3"}):
        with pytest.raises(UpstreamRejected):  # after two 503s, the unknown operation: 404
            client.get_operation("op-3")

    upstream = recorded.spans.get_finished_spans()[0]
    assert upstream.attributes["recobatch.attempts"] == 3
    assert upstream.attributes["http.response.status_code"] == 404
    assert [(e.name, dict(e.attributes)) for e in upstream.events] == [
        ("retry", {"http.response.status_code": 503})] * 2
