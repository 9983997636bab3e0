"""One real run through devhost, Azurite and recoservice, its spans read from the trace file:
one span per activity call (counted against the run's histories, so Durable replays add none)
and one per upstream call, each with the run's id, none holding a secret."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from recobatch import telemetry

pytestmark = pytest.mark.e2e

UPSTREAM_TEMPLATES = {"/batchjobs", "/operations/{operationId}"}


def _scheduled(history: list[dict]) -> Counter:
    return Counter(e["FunctionName"] for e in history if e["EventType"] == "TaskScheduled")


def test_one_run_gives_one_span_per_activity_call_and_upstream_call_all_with_the_run_id(
        traced_app_factory, demo_items):
    # Three chunks, two in flight: the service's one-job-per-key rule answers 409 to some
    # submits, which wait on a durable timer and submit again (more activity calls, more spans).
    app = traced_app_factory(BATCH_MAX_JOB_BYTES="1024", RECO_MAX_CONCURRENT_JOBS="2",
                             RECO_NUMBER_OF_RESULTS="2")
    requests_ = [{"SeedItems": [demo_items[i], demo_items[i + 1]]} for i in range(0, 180, 2)]
    app.upload("traced.json", json.dumps({"requests": requests_}))

    marker, body = app.marker("traced.json")
    run_id = body["instanceId"]
    run = app.instance(run_id)
    chunks = [c["name"] for c in body["chunks"]]
    histories = [run["historyEvents"]] + [
        app.instance(f"{run_id}:{chunk}")["historyEvents"] for chunk in chunks]
    spans = app.spans()

    assert marker == "_SUCCESS" and len(chunks) >= 3 and run["runtimeStatus"] == "Completed"
    calls = sum((_scheduled(h) for h in histories), Counter())
    activity_spans = [s for s in spans if s["name"].startswith("activity ")]
    assert Counter(s["name"].removeprefix("activity ") for s in activity_spans) == calls
    upstream = [s for s in spans if s["kind"] == "CLIENT"]
    assert len(upstream) == (calls["submit_chunk"] + calls["check_operation"]
                             + calls["cancel_operation"])
    assert len(spans) == len(activity_spans) + len(upstream)
    assert all(s["attributes"][telemetry.INSTANCE_ID] == run_id for s in spans)

    by_id = {s["spanId"]: s for s in activity_spans}
    for span in upstream:
        attributes = span["attributes"]
        assert attributes[telemetry.URL_TEMPLATE] in UPSTREAM_TEMPLATES
        assert span["name"] == f"{attributes[telemetry.HTTP_METHOD]} {attributes['url.template']}"
        assert attributes[telemetry.HTTP_STATUS] in (200, 202, 409, 429)
        assert attributes[telemetry.ATTEMPTS] >= 1
        parent = by_id[span["parentId"]]  # made inside the activity that called
        assert span["traceId"] == parent["traceId"]
        assert attributes[telemetry.CHUNK] == parent["attributes"][telemetry.CHUNK]
        if attributes["url.template"] == "/batchjobs":
            assert parent["name"] == "activity submit_chunk"
        else:
            assert attributes[telemetry.OPERATION_ID] == parent["attributes"][
                telemetry.OPERATION_ID]
    # every activity of a chunk names it (the run-level ones have no chunk of their own)
    run_level = {"prepare_batch", "merge_results", "write_marker", "notify_run"}
    for span in activity_spans:
        if span["name"].removeprefix("activity ") not in run_level:
            assert span["attributes"][telemetry.CHUNK] in chunks, span["name"]
    submits = [s for s in activity_spans if s["name"] == "activity submit_chunk"]
    assert {s["attributes"][telemetry.CHUNK] for s in submits} == set(chunks)
    accepted = [s for s in upstream if s["attributes"][telemetry.HTTP_STATUS] == 202]
    assert len(accepted) == len(chunks)

    text = app.trace_file.read_text()
    key = app.settings["RECO_SUBSCRIPTION_KEY"]
    account_key = app.settings["AzureWebJobsStorage"].split("AccountKey=")[1].split(";")[0]
    assert key not in text and account_key not in text
    assert "sig=" not in text.lower() and "sig%3d" not in text.lower()
    urls = {s["attributes"][telemetry.URL_FULL] for s in upstream}
    assert urls == {app.settings["RECO_ENDPOINT"] + t for t in UPSTREAM_TEMPLATES}


def test_without_a_trace_file_or_connection_string_nothing_is_exported(traced_app_factory,
                                                                       demo_items):
    app = traced_app_factory(trace=False)
    app.upload("quiet.json", json.dumps({"requests": [{"SeedItems": demo_items[:2]}]}))

    marker, _ = app.marker("quiet.json")

    assert marker == "_SUCCESS"
    assert not app.trace_file.exists()
    assert list(app.trace_file.parent.glob("spans-*.jsonl")) == []
