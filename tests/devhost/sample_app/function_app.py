"""A small function app that exercises every devhost feature (used by tests/devhost only).

Side effects go to files under ``$SAMPLE_STATE_DIR`` so the tests can count them.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob_types

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)


def _state(name: str) -> Path:
    return Path(os.environ["SAMPLE_STATE_DIR"]) / name


def _append(name: str, record: dict) -> None:
    with open(_state(name), "a") as handle:
        handle.write(json.dumps(record) + "\n")


# -- HTTP -------------------------------------------------------------------------------------

@app.route(route="ping", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")


@app.route(route="echo/{word}", methods=["GET", "POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    body = {"method": req.method, "word": req.route_params.get("word"),
            "q": req.params.get("q"), "body": req.get_body().decode()}
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.route(route="setting/{name}", methods=["GET"])
def setting(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(os.environ.get(req.route_params["name"], "<unset>"))


@app.route(route="start/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    payload = json.loads(body) if body else None
    instance_id = await client.start_new(req.route_params["name"], req.params.get("id"), payload)
    return client.create_check_status_response(req, instance_id)


@app.route(route="status/{id}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    state = await client.get_status(req.route_params["id"], show_history=True)
    body = {"runtimeStatus": state.runtime_status.value if state.runtime_status else None,
            "output": state.output, "customStatus": state.custom_status}
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.route(route="raise/{id}/{event}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def raise_event(req: func.HttpRequest,
                      client: df.DurableOrchestrationClient) -> func.HttpResponse:
    await client.raise_event(req.route_params["id"], req.route_params["event"],
                             json.loads(req.get_body() or b"null"))
    return func.HttpResponse(status_code=202)


# -- orchestrators ----------------------------------------------------------------------------

@app.orchestration_trigger(context_name="context")
def sequence(context: df.DurableOrchestrationContext):
    names = context.get_input() or ["Tokyo", "Seattle", "London"]
    results = []
    for name in names:
        results.append((yield context.call_activity(hello, name)))
    return results


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    count = context.get_input()
    results = yield context.task_all([context.call_activity(double, i) for i in range(count)])
    return {"sum": sum(results), "results": results}


@app.orchestration_trigger(context_name="context")
def race(context: df.DurableOrchestrationContext):
    seconds = context.get_input()["timerSeconds"]
    timer = context.create_timer(context.current_utc_datetime + timedelta(seconds=seconds))
    event = context.wait_for_external_event("go")
    winner = yield context.task_any([timer, event])
    if winner == event:
        timer.cancel()
        return {"winner": "event", "value": event.result}
    return {"winner": "timer"}


@app.orchestration_trigger(context_name="context")
def retrying(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=1000,
                              max_number_of_attempts=context.get_input()["attempts"])
    result = yield context.call_activity_with_retry(flaky, options, context.get_input())
    return result


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    first = context.call_sub_orchestrator(sequence, ["a", "b"])
    second = context.call_sub_orchestrator(sequence, ["c"], f"{context.instance_id}-child")
    results = yield context.task_all([first, second])
    try:
        retry = df.RetryOptions(first_retry_interval_in_milliseconds=1000,
                                max_number_of_attempts=2)
        yield context.call_sub_orchestrator_with_retry(always_fails, retry, None)
        failure = None
    except Exception as exc:
        failure = str(exc)
    return {"results": results, "failure": failure}


@app.orchestration_trigger(context_name="context")
def always_fails(context: df.DurableOrchestrationContext):
    yield context.call_activity(hello, "doomed")
    raise ValueError("child gave up")


@app.orchestration_trigger(context_name="context")
def parent_of_broken(context: df.DurableOrchestrationContext):
    try:
        yield context.call_sub_orchestrator(bad_timer, None, f"{context.instance_id}-child")
    except Exception as exc:
        return str(exc)
    return "no failure"


@app.orchestration_trigger(context_name="context")
def bad_timer(context: df.DurableOrchestrationContext):
    # strftime writes year 5 as "5-01-01T...", no ISO timestamp: devhost fails the episode itself
    yield context.create_timer(datetime(5, 1, 1, tzinfo=UTC))


@app.orchestration_trigger(context_name="context")
def counter(context: df.DurableOrchestrationContext):
    state = context.get_input()
    value = yield context.call_activity(double, state["n"])
    if state["n"] < 3:
        context.continue_as_new({"n": state["n"] + 1, "seen": state["seen"] + [value]})
        return None
    return {"n": state["n"], "seen": state["seen"] + [value]}


@app.orchestration_trigger(context_name="context")
def parent_of_counter(context: df.DurableOrchestrationContext):
    result = yield context.call_sub_orchestrator(counter, {"n": 0, "seen": []},
                                                 f"{context.instance_id}-counter")
    return result


@app.orchestration_trigger(context_name="context")
def catches(context: df.DurableOrchestrationContext):
    try:
        yield context.call_activity(fails_typed, context.get_input())
    except Exception as exc:
        return str(exc)
    return "no failure"


@app.orchestration_trigger(context_name="context")
def with_status(context: df.DurableOrchestrationContext):
    context.set_custom_status({"phase": "waiting"})
    value = yield context.wait_for_external_event("finish")
    context.set_custom_status({"phase": "done", "value": value})
    return value


@app.orchestration_trigger(context_name="context")
def nondeterministic(context: df.DurableOrchestrationContext):
    # deliberately wrong: the activity name depends on how often this code ran
    path = _state("nondet-count")
    runs = int(path.read_text()) if path.exists() else 0
    path.write_text(str(runs + 1))
    first = hello if runs == 0 else double
    yield context.call_activity(first, 1)
    return "unreachable"


@app.orchestration_trigger(context_name="context")
def early_event(context: df.DurableOrchestrationContext):
    yield context.call_activity(wait_flag, context.get_input())
    value = yield context.wait_for_external_event("early")
    return value


@app.orchestration_trigger(context_name="context")
def old_and_new(context: df.DurableOrchestrationContext):
    """task_any over a task yielded before and a new one: the host waits for the new one."""
    spec = context.get_input()
    old = context.wait_for_external_event("old")
    yield context.task_any([old, context.create_timer(context.current_utc_datetime)])
    new = context.call_activity(wait_flag, spec)
    winner = yield context.task_any([old, new])
    after = yield context.call_activity(hello, "after")
    return {"winner": "old" if winner == old else "new", "after": after}


@app.orchestration_trigger(context_name="context")
def big_status(context: df.DurableOrchestrationContext):
    context.set_custom_status({"pad": "x" * context.get_input()})
    yield context.create_timer(context.current_utc_datetime)
    return "done"


@app.orchestration_trigger(context_name="context")
def durable_work(context: df.DurableOrchestrationContext):
    """Crash test: an activity that waits on a flag, a long timer, then one side effect."""
    spec = context.get_input()
    yield context.call_activity(wait_flag, spec)
    yield context.create_timer(context.current_utc_datetime + timedelta(minutes=30))
    context.set_custom_status("timer done")
    yield context.call_activity(record, {"file": spec["record"], "line": context.instance_id})
    return "done"


# -- activities -------------------------------------------------------------------------------

@app.activity_trigger(input_name="name")
def hello(name: str) -> str:
    return f"Hello {name}"


@app.activity_trigger(input_name="value")
def double(value: int) -> int:
    return value * 2


@app.activity_trigger(input_name="spec")
def flaky(spec: dict) -> str:
    path = _state(f"flaky-{spec['key']}")
    attempt = (int(path.read_text()) if path.exists() else 0) + 1
    path.write_text(str(attempt))
    if attempt <= spec["failures"]:
        raise RuntimeError(f"flaky failure {attempt}")
    return f"ok after {attempt}"


@app.activity_trigger(input_name="spec")
def wait_flag(spec: dict) -> str:
    _state(spec["started"]).touch()
    while not _state(spec["flag"]).exists():
        time.sleep(0.05)
    return "flag seen"


class StorageError(Exception):
    """Named like recobatch's: the class name is also the error code."""

    def __str__(self) -> str:
        return f"StorageError: {self.args[0]}"


@app.activity_trigger(input_name="text")
def fails_typed(text: str) -> str:
    raise StorageError(text)


@app.activity_trigger(input_name="spec")
def record(spec: dict) -> str:
    _append(spec["file"], {"line": spec["line"]})
    return "recorded"


# -- blob trigger -----------------------------------------------------------------------------

@app.blob_trigger(arg_name="blob", path="%SAMPLE_CONTAINER%/in/{name}",
                  connection="SampleStorage")
@app.durable_client_input(client_name="client")
async def on_blob(blob: func.InputStream, client: df.DurableOrchestrationClient) -> None:
    props = blob.blob_properties or {}
    _append("blob-fires.jsonl", {"name": blob.name, "length": blob.length, "uri": blob.uri,
                                 "etag": props.get("ETag"), "data": blob.read().decode()})
    if blob.name.rsplit("/", 1)[-1].startswith("poison"):
        raise RuntimeError("this blob always fails")
    # one run per blob version, as the real app does
    await client.start_new("sequence", "blob-" + props["ETag"].strip('"'), [blob.name])


def _record_client(name: str, client: blob_types.BlobClient) -> None:
    props = client.get_blob_properties()
    _append(name, {"type": f"{type(client).__module__}.{type(client).__qualname__}",
                   "container": client.container_name, "blob": client.blob_name,
                   "url": client.url, "etag": props.etag, "size": props.size})


@app.blob_trigger(arg_name="client", path="%SAMPLE_CONTAINER%/sdk/{name}",
                  connection="SampleStorage")
def on_blob_client(client: blob_types.BlobClient) -> None:
    """SDK-type binding, polling source: the function gets a BlobClient, not the bytes."""
    _record_client("sdk-fires.jsonl", client)


@app.blob_trigger(arg_name="client", path="%SAMPLE_CONTAINER%/events/{name}",
                  connection="SampleStorage", source=func.BlobSource.EVENT_GRID)
def on_blob_event(client: blob_types.BlobClient) -> None:
    """SDK-type binding, Event Grid source."""
    _record_client("event-fires.jsonl", client)
