"""``recobatch.telemetry.configure`` in a fresh process, as ``function_app.py`` calls it: nothing
without the settings; with ``APPLICATIONINSIGHTS_CONNECTION_STRING`` the real Azure Monitor
distro and exporter, sending to a local ingestion endpoint that this test serves."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = "rb-fedcba9876543210fedcba9876543210"
KEY = "reco-key-telemetry-0123456789"
SCRIPT = f"""
import json, logging, requests, sys
from opentelemetry import metrics, trace
from recobatch import telemetry
if sys.argv[2:] == ["preset"]:  # the worker, with PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY
    from opentelemetry.sdk.trace import TracerProvider
    trace.set_tracer_provider(TracerProvider())
mode = telemetry.configure()
with telemetry.activity_span("submit_chunk", {{"instanceId": "{RUN}", "chunk": 1}}):
    logging.getLogger("activities.probe").warning(
        "submitting with %s to %s", "{KEY}", "https://acct.blob/c/b?sv=1&sig=c2lnbmF0dXJl")
    base = sys.argv[1] + "/recommendations/v4.0"
    with telemetry.upstream_span("POST", "/batchjobs", base) as call:
        requests.get(sys.argv[1] + "/plain-requests-call", timeout=5)
        call.answered(202)
telemetry.observe("merge_results", {{}}, {{"counts": {{"results": 3}}}})
provider = trace.get_tracer_provider()
if hasattr(provider, "force_flush"):
    provider.force_flush()
    getattr(metrics.get_meter_provider(), "force_flush", lambda: None)()
    from opentelemetry._logs import get_logger_provider
    getattr(get_logger_provider(), "force_flush", lambda: None)()
print(json.dumps({{"mode": mode, "provider": type(provider).__name__}}))
"""


class Ingestion(BaseHTTPRequestHandler):
    """Application Insights' track endpoint, locally: keeps each request's decoded body."""

    received: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.received.append(f"{self.path} {body.decode('utf-8', 'replace')}")
        items = body.count(b'"iKey"') or 1
        answer = json.dumps({"itemsReceived": items, "itemsAccepted": items, "errors": []})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer.encode())

    def do_GET(self) -> None:  # noqa: N802
        self.received.append(f"GET {self.path}")
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ingestion() -> Iterator[str]:
    Ingestion.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ingestion)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _run(endpoint: str, *args: str, **settings: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("APPLICATIONINSIGHTS_CONNECTION_STRING", "RECOBATCH_TRACE_FILE",
                        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "OTEL_TRACES_SAMPLER",
                        "OTEL_TRACES_SAMPLER_ARG")}
    env.update({"RECO_SUBSCRIPTION_KEY": KEY,
                # no network beyond this machine: no VM metadata look-up, no statsbeat
                "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",
                "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true", **settings})
    out = subprocess.run([sys.executable, "-c", SCRIPT, endpoint, *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    _run.stderr = out.stderr  # type: ignore[attr-defined]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_without_the_settings_nothing_is_configured_or_sent(ingestion):
    result = _run(ingestion)

    assert result == {"mode": None, "provider": "ProxyTracerProvider"}
    assert Ingestion.received == ["GET /plain-requests-call"]


def test_the_trace_file_setting_writes_spans_to_that_file_only(ingestion, tmp_path):
    spans = tmp_path / "spans.jsonl"

    result = _run(ingestion, RECOBATCH_TRACE_FILE=str(spans))

    assert result["mode"] == "file"
    names = [json.loads(line)["name"] for line in spans.read_text().splitlines()]
    assert names == ["POST /batchjobs", "activity submit_chunk"]
    assert oct(spans.stat().st_mode & 0o777) == "0o600"
    assert Ingestion.received == ["GET /plain-requests-call"]


def test_the_connection_string_sends_spans_logs_and_metrics_with_the_run_id_and_no_secret(
        ingestion):
    connection = (f"InstrumentationKey=00000000-0000-0000-0000-000000000001;"
                  f"IngestionEndpoint={ingestion}/;LiveEndpoint={ingestion}/")

    result = _run(ingestion, APPLICATIONINSIGHTS_CONNECTION_STRING=connection)

    assert result["mode"] == "azure-monitor"
    tracks = "\n".join(r for r in Ingestion.received if r.startswith("/v2.1/track"))
    envelopes = [json.loads(line) for r in Ingestion.received if r.startswith("/v2.1/track")
                 for line in _json_lines(r.split(" ", 1)[1])]
    by_name = {}
    for envelope in envelopes:
        base = envelope["data"]["baseData"]
        by_name.setdefault(base.get("name") or base.get("message") or base.get("metrics", [{}])[0]
                           .get("name"), []).append(base)
    (dependency,) = by_name["POST /recommendations/v4.0/batchjobs"]
    assert dependency["type"] == "HTTP" and dependency["resultCode"] == "202"
    assert dependency["properties"]["recobatch.instance_id"] == RUN
    assert dependency["properties"]["recobatch.chunk"] == "chunk-00001"
    (activity,) = by_name["activity submit_chunk"]
    assert activity["properties"]["recobatch.instance_id"] == RUN
    (log,) = [b for name, bases in by_name.items() if name and name.startswith("submitting")
              for b in bases]
    assert log["properties"]["recobatch.instance_id"] == RUN
    assert "sig=***" in log["message"]
    assert "recobatch.requests_scored" in by_name
    # the requests instrumentation is off: the plain call is no dependency
    assert "plain-requests-call" not in tracks
    assert KEY not in tracks and "c2lnbmF0dXJl" not in tracks


def _json_lines(body: str) -> list[str]:
    body = body.strip()
    if body.startswith("["):
        return [json.dumps(item) for item in json.loads(body)]
    return [line for line in body.splitlines() if line.strip()]


def test_entra_authentication_uses_the_named_managed_identity_as_the_host_does():
    from azure.identity import ManagedIdentityCredential

    from recobatch.telemetry import monitor_credential

    setting = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"
    user_assigned = monitor_credential({setting: "ClientId=1234-abcd;Authorization=AAD"})

    assert isinstance(user_assigned, ManagedIdentityCredential)
    assert isinstance(monitor_credential({setting: "Authorization=AAD"}),
                      ManagedIdentityCredential)
    assert monitor_credential({}) is None
    assert monitor_credential({setting: "Authorization=Key"}) is None


def test_a_provider_the_worker_set_is_kept_and_nothing_more_is_exported(ingestion):
    connection = f"InstrumentationKey=00000000-0000-0000-0000-000000000001;" \
                 f"IngestionEndpoint={ingestion}/"

    result = _run(ingestion, "preset", APPLICATIONINSIGHTS_CONNECTION_STRING=connection)

    assert result == {"mode": "worker", "provider": "TracerProvider"}
    assert Ingestion.received == ["GET /plain-requests-call"]


def test_a_connection_string_the_distro_refuses_leaves_the_app_running_without_telemetry(
        ingestion):
    result = _run(ingestion, APPLICATIONINSIGHTS_CONNECTION_STRING="not-a-connection-string")

    assert result == {"mode": "", "provider": "ProxyTracerProvider"}
    assert "Application Insights is not configured" in _run.stderr
    assert "not-a-connection-string" not in _run.stderr
    assert Ingestion.received == ["GET /plain-requests-call"]


def test_an_operator_sampler_setting_takes_over_from_keeping_every_span(ingestion):
    connection = (f"InstrumentationKey=00000000-0000-0000-0000-000000000001;"
                  f"IngestionEndpoint={ingestion}/;LiveEndpoint={ingestion}/")

    result = _run(ingestion, APPLICATIONINSIGHTS_CONNECTION_STRING=connection,
                  OTEL_TRACES_SAMPLER="always_off")

    assert result["mode"] == "azure-monitor"
    tracks = "\n".join(r for r in Ingestion.received if r.startswith("/v2.1/track"))
    assert "RemoteDependency" not in tracks  # no span sampled
    assert "recobatch.requests_scored" in tracks and "submitting with" in tracks
