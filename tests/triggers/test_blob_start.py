"""The blob trigger's user code, called with the worker's InputStream and a real durable client
bound to devhost (the same call the host makes when a blob lands)."""

from __future__ import annotations

import json

import azure.functions as func
import pytest
import requests
from azure.functions.blob import InputStream  # the worker's concrete stream

from recobatch import naming
from triggers import start_batch_from_blob


def stream_of(app, name: str, with_etag: bool = True) -> tuple[func.InputStream, str]:
    container = app.container("BATCH_INPUT_CONTAINER")
    props = container.get_blob_client(name).get_blob_properties()
    properties = {"ETag": props.etag, "ContentLength": props.size} if with_etag else {}
    data = container.get_blob_client(name).download_blob().readall()
    stream = InputStream(data=data, name=f"{container.container_name}/{name}",
                              length=props.size, blob_properties=properties)
    return stream, props.etag


def fire(app, stream: func.InputStream) -> None:
    app.run_async(start_batch_from_blob._function._func(blob=stream, client=app.binding_json()))


def instance(app, instance_id: str) -> dict:
    resp = requests.get(f"{app.service.extra['base_url']}/durabletask/instances/{instance_id}",
                        params={"showInput": "true"}, timeout=30)
    assert resp.status_code in (200, 202), resp.text
    return resp.json()


def upload(app, name: str, items: list[str]) -> None:
    app.container("BATCH_INPUT_CONTAINER").upload_blob(
        name, json.dumps({"requests": [{"SeedItems": items}]}), overwrite=True)


@pytest.fixture
def app_env(app_env, run_async):
    app_env.run_async = run_async
    return app_env


def test_trigger_starts_the_run_named_after_the_blob_version(app_env, demo_items):
    upload(app_env, "trig/one.json", demo_items[10:12])
    stream, etag = stream_of(app_env, "trig/one.json")

    fire(app_env, stream)

    instance_id = naming.instance_id(app_env.settings["BATCH_INPUT_CONTAINER"], "trig/one.json",
                                     etag)
    started = instance(app_env, instance_id)
    assert started["name"] == "batch_orchestrator"
    run_input = started["input"] if isinstance(started["input"], dict) \
        else json.loads(started["input"])
    assert (run_input["name"], run_input["etag"]) == ("trig/one.json", etag)
    assert run_input["settings"] == {"maxConcurrentJobs": 1, "pollInitialSeconds": 2.0,
                                     "pollMaxSeconds": 10.0, "timeoutMinutes": 10.0,
                                     "outputContainer": app_env.settings["BATCH_OUTPUT_CONTAINER"]}
    assert app_env.wait_done(instance_id)["runtimeStatus"] == "Completed"


def test_repeated_trigger_for_the_same_version_starts_nothing(app_env, demo_items):
    upload(app_env, "trig/two.json", demo_items[12:13])
    stream, etag = stream_of(app_env, "trig/two.json")
    fire(app_env, stream)
    instance_id = naming.instance_id(app_env.settings["BATCH_INPUT_CONTAINER"], "trig/two.json",
                                     etag)
    app_env.wait_done(instance_id)
    first = instance(app_env, instance_id)

    fire(app_env, stream_of(app_env, "trig/two.json")[0])

    again = instance(app_env, instance_id)
    assert again["runtimeStatus"] == "Completed"
    assert again["createdTime"] == first["createdTime"]


def test_trigger_without_etag_in_metadata_reads_it_from_storage(app_env, demo_items):
    upload(app_env, "trig/three.json", demo_items[14:15])
    stream, etag = stream_of(app_env, "trig/three.json", with_etag=False)

    fire(app_env, stream)

    instance_id = naming.instance_id(app_env.settings["BATCH_INPUT_CONTAINER"],
                                     "trig/three.json", etag)
    assert instance(app_env, instance_id)["name"] == "batch_orchestrator"
    app_env.wait_done(instance_id)


def test_new_upload_of_the_same_name_is_a_new_run(app_env, demo_items):
    upload(app_env, "trig/four.json", demo_items[15:16])
    stream, first_etag = stream_of(app_env, "trig/four.json")
    fire(app_env, stream)
    upload(app_env, "trig/four.json", demo_items[16:17])
    stream, second_etag = stream_of(app_env, "trig/four.json")

    fire(app_env, stream)

    container = app_env.settings["BATCH_INPUT_CONTAINER"]
    ids = {naming.instance_id(container, "trig/four.json", e) for e in (first_etag, second_etag)}
    assert len(ids) == 2
    for instance_id in ids:
        assert instance(app_env, instance_id)["name"] == "batch_orchestrator"
        app_env.wait_done(instance_id)
