"""The blob trigger's user code called with the BlobClient the worker builds (and a real durable
client bound to devhost), and devhost firing it for a 500 MB blob without reading it. How it is
indexed (SDK-type binding, source): tests/test_indexing.py."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import psutil
import pytest
import requests
from azure.storage.blob import BlobBlock, BlobClient
from azurefunctions.extensions.bindings.blob import BlobClient as SdkBlobClient
from azurefunctions.extensions.bindings.blob import BlobClientConverter

from devhost.blobtrigger import model_binding_data
from devhost.services import REPO_ROOT, start_devhost
from recobatch import naming
from triggers import start_batch_from_blob


def client_of(app, name: str) -> tuple[BlobClient, str]:
    """The trigger's argument as the worker builds it from the host's model binding data."""
    container = app.container("BATCH_INPUT_CONTAINER")
    etag = container.get_blob_client(name).get_blob_properties().etag
    data = model_binding_data("AzureWebJobsStorage", container.container_name, name)
    client = BlobClientConverter.decode(data, trigger_metadata={}, pytype=SdkBlobClient)
    return client, etag


def fire(app, blob: BlobClient) -> None:
    app.run_async(start_batch_from_blob._function._func(blob=blob, client=app.binding_json()))


def instance(app, instance_id: str) -> requests.Response:
    return requests.get(f"{app.service.extra['base_url']}/durabletask/instances/{instance_id}",
                        params={"showInput": "true"}, timeout=30)


def started(app, instance_id: str) -> dict:
    resp = instance(app, instance_id)
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
    blob, etag = client_of(app_env, "trig/one.json")

    fire(app_env, blob)

    instance_id = naming.instance_id(app_env.settings["BATCH_INPUT_CONTAINER"], "trig/one.json",
                                     etag)
    run = started(app_env, instance_id)
    assert run["name"] == "batch_orchestrator"
    run_input = run["input"] if isinstance(run["input"], dict) else json.loads(run["input"])
    assert (run_input["name"], run_input["etag"]) == ("trig/one.json", etag.strip('"'))
    size = app_env.container("BATCH_INPUT_CONTAINER").get_blob_client(
        "trig/one.json").get_blob_properties().size
    assert run_input["size"] == size
    assert run_input["settings"] == {"maxConcurrentJobs": 1, "pollInitialSeconds": 2.0,
                                     "pollMaxSeconds": 10.0, "timeoutMinutes": 10.0,
                                     "outputContainer": app_env.settings["BATCH_OUTPUT_CONTAINER"],
                                     "notify": False}
    assert app_env.wait_done(instance_id)["runtimeStatus"] == "Completed"


def test_repeated_trigger_for_the_same_version_starts_nothing(app_env, demo_items):
    upload(app_env, "trig/two.json", demo_items[12:13])
    blob, etag = client_of(app_env, "trig/two.json")
    fire(app_env, blob)
    instance_id = naming.instance_id(app_env.settings["BATCH_INPUT_CONTAINER"], "trig/two.json",
                                     etag)
    app_env.wait_done(instance_id)
    first = started(app_env, instance_id)

    fire(app_env, client_of(app_env, "trig/two.json")[0])

    again = started(app_env, instance_id)
    assert again["runtimeStatus"] == "Completed"
    assert again["createdTime"] == first["createdTime"]


def test_blob_deleted_before_the_trigger_runs_is_logged_and_skipped(app_env, demo_items, caplog):
    upload(app_env, "trig/gone.json", demo_items[14:15])
    blob, etag = client_of(app_env, "trig/gone.json")
    blob.delete_blob()

    fire(app_env, blob)  # returns: no exception, so no host retry and no poison message

    instance_id = naming.instance_id(app_env.settings["BATCH_INPUT_CONTAINER"],
                                     "trig/gone.json", etag)
    assert instance(app_env, instance_id).status_code == 404
    assert "trig/gone.json was deleted before its trigger ran: nothing started" in caplog.text


def test_new_upload_of_the_same_name_is_a_new_run(app_env, demo_items):
    upload(app_env, "trig/four.json", demo_items[15:16])
    blob, first_etag = client_of(app_env, "trig/four.json")
    fire(app_env, blob)
    upload(app_env, "trig/four.json", demo_items[16:17])
    blob, second_etag = client_of(app_env, "trig/four.json")

    fire(app_env, blob)

    container = app_env.settings["BATCH_INPUT_CONTAINER"]
    ids = {naming.instance_id(container, "trig/four.json", e) for e in (first_etag, second_etag)}
    assert len(ids) == 2
    for instance_id in ids:
        assert started(app_env, instance_id)["name"] == "batch_orchestrator"
        app_env.wait_done(instance_id)


# -- devhost firing the real trigger for a 500 MB blob -----------------------------------------

BIG = 500 * 1024 * 1024
BLOCK = 4 * 1024 * 1024


def _rss_kib(pid: int, field: str) -> int:
    """``VmRSS`` / ``VmHWM`` (peak) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def _wait_instance(base: str, instance_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = requests.get(f"{base}/durabletask/instances/{instance_id}", timeout=10)
        if resp.status_code in (200, 202) and resp.json()["runtimeStatus"] in (
                "Completed", "Failed"):
            return resp.json()
        time.sleep(0.2)
    raise AssertionError(f"{instance_id} did not finish")


@pytest.mark.slow
def test_firing_for_a_500_mb_blob_does_not_read_it_into_devhost(
        tmp_path_factory, azurite, blob_service):
    tag = uuid.uuid4().hex[:8]
    settings = {
        "AzureWebJobsStorage": str(azurite.extra["connection_string"]),
        "FUNCTIONS_WORKER_RUNTIME": "python", "TASKHUB_NAME": "BigBlobHub",
        # never contacted: the run stops at InputTooLarge before any upstream call
        "RECO_ENDPOINT": "http://127.0.0.1:9/recommendations/v4.0",
        "RECO_SUBSCRIPTION_KEY": "unused", "RECO_MODEL_ID": "unused",
        "BATCH_INPUT_CONTAINER": f"bin-{tag}", "BATCH_OUTPUT_CONTAINER": f"bout-{tag}",
        "BATCH_WORK_CONTAINER": f"bwork-{tag}", "BATCH_MAX_INPUT_BYTES": "1048576",
    }
    for name in ("BATCH_INPUT_CONTAINER", "BATCH_OUTPUT_CONTAINER", "BATCH_WORK_CONTAINER"):
        blob_service.create_container(settings[name])
    container = blob_service.get_container_client(settings["BATCH_INPUT_CONTAINER"])
    svc = start_devhost(REPO_ROOT, tmp_path_factory.mktemp("big-devhost"), settings,
                        timer_scale=20.0, master_key="big-" + tag)
    base = str(svc.extra["base_url"])
    try:
        # warm up: the first trigger imports and connects everything
        warm = container.upload_blob("warm.json", b'{"requests": []}').get_blob_properties()
        _wait_instance(base, naming.instance_id(container.container_name, "warm.json",
                                                warm.etag))
        big = container.get_blob_client("big.jsonl")
        block = os.urandom(BLOCK)
        ids = [f"{n:08d}" for n in range(BIG // BLOCK)]
        for block_id in ids:
            big.stage_block(block_id, block)
        del block
        pid = svc.proc.pid
        before = _rss_kib(pid, "VmRSS")
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak (VmHWM) := current RSS

        etag = big.commit_block_list([BlobBlock(block_id=i) for i in ids])["etag"]
        run = _wait_instance(base, naming.instance_id(container.container_name, "big.jsonl",
                                                      etag))

        peak = _rss_kib(pid, "VmHWM")
        print(f"devhost RSS before {before / 1024:.1f} MiB, peak while firing for "
              f"{BIG // 2**20} MiB blob {peak / 1024:.1f} MiB (+{(peak - before) / 1024:.1f} MiB)")
        assert big.get_blob_properties().size == BIG
        assert run["output"]["code"] == "InputTooLarge"  # the run saw the size, read nothing
        assert peak - before < 8 * 1024, f"RSS grew {(peak - before) / 1024:.1f} MiB"
        assert psutil.Process(pid).is_running()
    finally:
        svc.stop()
        container.delete_blob("big.jsonl", delete_snapshots="include")
