"""The keyless ``/durabletask/`` RPC endpoint serves the app's own client only.

A web page open in the developer's browser can send "simple" cross-origin requests (form posts,
``fetch`` with ``no-cors``: ``text/plain`` bodies, no body at all) to 127.0.0.1. Those must not
start, signal or terminate runs: devhost accepts JSON bodies only (or no body, as the Durable
SDK sends for terminate), from loopback peers, for its own host name, and refuses
any ``Origin`` that is not devhost itself.
"""

from __future__ import annotations

import json
import uuid

import pytest
import requests
from devhost_testkit import DevHost


def rpc(devhost: DevHost, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{devhost.base}/durabletask/{path}", timeout=10, **kwargs)


def _start(devhost: DevHost, instance_id: str, **kwargs) -> requests.Response:
    return rpc(devhost, "POST", f"orchestrators/sequence/{instance_id}", **kwargs)


def test_the_sdks_own_json_request_is_served(devhost: DevHost) -> None:
    instance_id = uuid.uuid4().hex

    resp = _start(devhost, instance_id, json=["x"])

    assert resp.status_code == 202
    assert devhost.wait(instance_id)["output"] == ["Hello x"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_a_body_that_is_not_json_typed_is_415_and_starts_nothing(devhost: DevHost,
                                                                 content_type: str) -> None:
    instance_id = uuid.uuid4().hex

    resp = _start(devhost, instance_id, data=json.dumps(["x"]),
                  headers={"Content-Type": content_type})

    assert resp.status_code == 415
    assert devhost.status(instance_id).status_code == 404


@pytest.mark.parametrize("origin", ["http://evil.example", "null",
                                    "http://127.0.0.1:1", "https://localhost"])
def test_a_foreign_origin_is_403_even_with_json_or_no_body(devhost: DevHost,
                                                           origin: str) -> None:
    instance_id = devhost.start("with_status")
    devhost.wait(instance_id, statuses=("Running",))

    started = _start(devhost, uuid.uuid4().hex, json=["x"], headers={"Origin": origin})
    terminated = rpc(devhost, "POST", f"instances/{instance_id}/terminate",
                     headers={"Origin": origin})

    assert started.status_code == 403 and terminated.status_code == 403
    assert devhost.status(instance_id).json()["runtimeStatus"] == "Running"
    assert rpc(devhost, "POST", f"instances/{instance_id}/terminate").status_code == 202


def test_devhosts_own_origin_is_served(devhost: DevHost) -> None:
    instance_id = uuid.uuid4().hex

    resp = _start(devhost, instance_id, json=["y"], headers={"Origin": devhost.base})

    assert resp.status_code == 202
    devhost.wait(instance_id)


def test_another_host_name_is_403(devhost: DevHost) -> None:
    # DNS rebinding: a page's own name resolving to 127.0.0.1 is same-origin to the browser
    resp = _start(devhost, uuid.uuid4().hex, json=["x"],
                  headers={"Host": f"rebind.example:{devhost.service.port}"})

    assert resp.status_code == 403
