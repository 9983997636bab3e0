"""Blob triggers: once per blob version, again on re-upload, across restarts; poison."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.storage.blob import (
    AccountSasPermissions,
    BlobServiceClient,
    ResourceTypes,
    generate_account_sas,
)
from azure.storage.queue import QueueClient, TextBase64DecodePolicy
from devhost_testkit import DevHost

from devhost.blobtrigger import POISON_QUEUE


def _fires(host: DevHost) -> list[dict]:
    path = host.side_effect("blob-fires.jsonl")
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _wait_fires(host: DevHost, count: int, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fires = _fires(host)
        if len(fires) >= count:
            return fires
        time.sleep(0.1)
    raise AssertionError(f"{len(_fires(host))} fires, wanted {count}\n{host.service.log_tail()}")


def test_fires_once_per_etag_again_on_reupload_and_not_after_restart(
        devhost_factory, container, blob_service: BlobServiceClient, tmp_path: Path) -> None:
    workdir = tmp_path / "blobhost"
    host = devhost_factory(workdir, container=container.container_name)
    first = container.upload_blob("in/requests.json", b'{"v": 1}').get_blob_properties()
    container.upload_blob("elsewhere/ignored.json", b"{}")  # outside the trigger path

    fires = _wait_fires(host, 1)
    time.sleep(3)  # several polls: the same version must not fire again
    assert len(_fires(host)) == 1
    etag = fires[0].pop("etag")
    assert fires[0] == {"name": f"{container.container_name}/in/requests.json", "length": 8,
                        "uri": f"{container.url}/in/requests.json", "data": '{"v": 1}'}
    # blob_properties["ETag"] is quoted, as in the HTTP header the host reads it from
    assert etag.startswith('"') and etag.strip('"') == first.etag.strip('"')

    run = host.wait("blob-" + etag.strip('"'))  # the trigger's durable client started it
    assert run["output"] == [f"Hello {container.container_name}/in/requests.json"]

    second = container.upload_blob("in/requests.json", b'{"v": 2}',
                                   overwrite=True).get_blob_properties()
    fires = _wait_fires(host, 2)
    assert fires[1]["etag"].strip('"') == second.etag.strip('"') != first.etag.strip('"')

    host.service.stop()
    host = devhost_factory(workdir, container=container.container_name)
    time.sleep(3)
    assert len(_fires(host)) == 2  # receipts survived the restart
    container.upload_blob("in/other.json", b"x")
    assert _wait_fires(host, 3)[2]["name"].endswith("/in/other.json")


def test_poison_after_five_failed_attempts(devhost_factory, container,
                                           storage_connection_string: str) -> None:
    host = devhost_factory(container=container.container_name)
    container.upload_blob("in/poison.json", b"boom")

    _wait_fires(host, 5)
    time.sleep(4)  # no sixth attempt

    assert len(_fires(host)) == 5
    assert "is poison for on_blob after 5 attempts" in host.service.log.read_text()
    queue = QueueClient.from_connection_string(storage_connection_string, POISON_QUEUE,
                                               message_decode_policy=TextBase64DecodePolicy())
    messages = [json.loads(m.content) for m in queue.receive_messages(max_messages=32)]
    assert {"Type": "BlobTrigger", "FunctionId": "Host.Functions.on_blob",
            "BlobType": "BlockBlob", "ContainerName": container.container_name,
            "BlobName": "in/poison.json", "ETag": container.get_blob_client(
                "in/poison.json").get_blob_properties().etag} in messages


def test_uri_has_no_sas_token_with_a_sas_connection(devhost_factory, container,
                                                    blob_service: BlobServiceClient) -> None:
    cred = blob_service.credential
    sas = generate_account_sas(
        cred.account_name, cred.account_key, ResourceTypes(service=True, container=True,
                                                           object=True),
        AccountSasPermissions(read=True, list=True), datetime.now(UTC) + timedelta(hours=1))
    connection = f"BlobEndpoint={blob_service.url.rstrip('/')};SharedAccessSignature={sas}"
    host = devhost_factory(container=container.container_name,
                           extra_env={"SampleStorage": connection})
    container.upload_blob("in/sas.json", b"{}")

    fire = _wait_fires(host, 1)[0]

    assert fire["data"] == "{}"   # the trigger really read the blob with the SAS
    assert fire["uri"] == f"{container.url}/in/sas.json"


def _records(host: DevHost, name: str) -> list[dict]:
    path = host.side_effect(name)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _wait_records(host: DevHost, name: str, count: int, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _records(host, name)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{len(_records(host, name))} {name}, wanted {count}\n"
                         f"{host.service.log_tail()}")


def test_sdk_type_binding_gets_a_blob_client_made_from_the_connection_setting(
        devhost_factory, container) -> None:
    host = devhost_factory(container=container.container_name)
    uploaded = container.upload_blob("sdk/big.json", b"x" * 1000).get_blob_properties()

    fire = _wait_records(host, "sdk-fires.jsonl", 1)[0]

    # the worker's converter (azurefunctions-extensions-bindings-blob) built it from
    # {"Connection": "SampleStorage", "ContainerName", "BlobName"}: a plain SDK BlobClient
    assert fire["type"] == "azure.storage.blob._blob_client.BlobClient"
    assert (fire["container"], fire["blob"]) == (container.container_name, "sdk/big.json")
    assert fire["url"] == f"{container.url}/sdk/big.json"
    assert (fire["etag"], fire["size"]) == (uploaded.etag, 1000)
    time.sleep(2)
    assert len(_records(host, "sdk-fires.jsonl")) == 1


def test_event_grid_source_delivers_each_new_blob_version_once_and_never_older_blobs(
        devhost_factory, container, tmp_path: Path) -> None:
    workdir = tmp_path / "eventgrid"
    container.upload_blob("events/before.json", b"{}")  # before the subscription: no event
    host = devhost_factory(workdir, container=container.container_name)
    first = container.upload_blob("events/new.json", b"1").get_blob_properties()

    _wait_records(host, "event-fires.jsonl", 1)
    second = container.upload_blob("events/new.json", b"22",
                                   overwrite=True).get_blob_properties()
    _wait_records(host, "event-fires.jsonl", 2)
    time.sleep(3)  # several listings: nothing delivered twice, the old blob never

    assert [(f["blob"], f["etag"]) for f in _records(host, "event-fires.jsonl")] == [
        ("events/new.json", first.etag), ("events/new.json", second.etag)]
    host.service.stop()
    host = devhost_factory(workdir, container=container.container_name)
    container.upload_blob("events/after-restart.json", b"3")
    _wait_records(host, "event-fires.jsonl", 3)
    time.sleep(2)
    assert [f["blob"] for f in _records(host, "event-fires.jsonl")] == [
        "events/new.json", "events/new.json", "events/after-restart.json"]
    assert "Event Grid source, 1 blob(s) already in" in host.service.log.read_text()
