"""Driving activities in sequence, as the orchestrators do, for activity tests."""

from __future__ import annotations

import json
import time

from activities.check_operation import run as check_operation
from activities.prepare_batch import run as prepare_batch
from activities.submit_chunk import run as submit_chunk


def upload(containers, name: str, body: bytes | str) -> str:
    """Upload a requests file; return its ETag without quotes."""
    blob = containers["input"].get_blob_client(name)
    blob.upload_blob(body, overwrite=True)
    return str(blob.get_blob_properties().etag).strip('"')


def seed_file(requests: list) -> bytes:
    return json.dumps({"requests": requests}).encode()


def prepare(containers, name: str, instance: str = "rb-test") -> dict:
    return prepare_batch({"instanceId": instance,
                              "container": containers["input"].container_name, "name": name})


def wait_operation(operation_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = check_operation({"operationId": operation_id})
        if state["status"] in ("Succeeded", "Failed", "Cancelled"):
            return state
        time.sleep(0.2)
    raise AssertionError(f"operation {operation_id} did not finish")


def submit(instance: str, chunk: str, job: dict) -> dict:
    return submit_chunk({"instanceId": instance, "chunk": chunk, "job": job})
