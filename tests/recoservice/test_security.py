"""Issue 7: the key before anything, body caps, and the fault routes behind --faults and an
admin key (blob hosts: test_blob_hosts.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

KEY_HEADER = "Ocp-Apim-Subscription-Key"


def _root(reco: Any) -> str:
    return reco.base_url.split("/recommendations")[0]


def _routes(reco: Any) -> list[tuple[str, str]]:
    """Every (method, path) the service documents, path parameters filled in."""
    paths = requests.get(f"{_root(reco)}/openapi.json", timeout=10).json()["paths"]
    out = []
    for path, methods in paths.items():
        filled = path.replace("{build_id}", "1000001")
        while "{" in filled:
            start, end = filled.index("{"), filled.index("}")
            filled = filled[:start] + "x" + filled[end + 1:]
        out += [(method.upper(), filled) for method in methods]
    return out


def _raw_request(reco: Any, head: str, body: bytes = b"", read_timeout: float = 10) -> bytes:
    """Send ``head`` and part of a body on a raw socket; return all the server sends until
    it closes the connection (or the timeout)."""
    url = urlsplit(reco.base_url)
    with socket.create_connection((url.hostname, url.port), timeout=read_timeout) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n" + body)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            chunks.append(b"<no close>")
    return b"".join(chunks)


# ------------------------------------------------------------------------------- keys first


def test_every_documented_route_is_401_without_a_key_even_with_a_bad_body(reco):
    routes = _routes(reco)
    assert ("GET", "/recommendations/v4.0/models/x/builds") in routes
    assert ("POST", "/recommendations/v4.0/models") in routes

    answers = {(method, path): requests.request(
        method, f"{_root(reco)}{path}", data=b"{not json", timeout=10,
        headers={"Content-Type": "application/json"}).status_code
        for method, path in routes}

    assert set(answers.values()) == {401}, answers


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/models/x/builds"), ("GET", "/models/x/builds/1000001"),
    ("POST", "/models"), ("PATCH", "/models/x"), ("POST", "/models/x/builds"),
    ("GET", "/no/such/route"),
])
def test_wrong_key_is_401_before_the_body_is_parsed(reco, method, path):
    resp = requests.request(method, f"{reco.base_url}{path}", data=b"{not json",
                            headers={KEY_HEADER: "wrong", "Content-Type": "application/json"},
                            timeout=10)

    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "Unauthorized"


@pytest.mark.parametrize("framing", ["Content-Length: 5000000000", "Transfer-Encoding: chunked"])
def test_unauthenticated_huge_body_is_refused_without_reading_it(reco, framing):
    path = urlsplit(reco.base_url).path
    head = (f"POST {path}/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"{framing}\r\n")
    first = b"10000\r\n" + b" " * 0x10000 + b"\r\n" if "chunked" in framing else b" " * 65536

    started = time.monotonic()
    answer = _raw_request(reco, head, first)

    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    # ... and closes the connection instead of reading the rest of the body.
    assert not answer.endswith(b"<no close>")
    assert time.monotonic() - started < 5


def test_json_body_over_the_cap_is_413_from_its_content_length(reco):
    path = urlsplit(reco.base_url).path
    head = (f"POST {path}/models HTTP/1.1\r\nHost: x\r\n{KEY_HEADER}: {reco.key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1048577\r\n")

    answer = _raw_request(reco, head, b"{")

    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"1,048,576 bytes" in answer
    assert not answer.endswith(b"<no close>")


def test_chunked_json_body_over_the_cap_is_413_while_reading(reco):
    def body() -> Iterator[bytes]:
        yield b'{"modelName": "big", "description": "'
        for _ in range(40):
            yield b"x" * 32768
        yield b'"}'

    resp = requests.post(f"{reco.base_url}/models", data=body(), timeout=30,
                         headers={**reco.headers(), "Content-Type": "application/json"})

    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "PayloadTooLarge"
    assert "1,048,576 bytes" in resp.json()["error"]["message"]


def test_json_body_under_the_cap_is_accepted(reco):
    resp = requests.post(f"{reco.base_url}/models", headers=reco.headers(), timeout=30,
                         json={"modelName": "roomy", "description": "d" * 1_000_000})

    assert resp.status_code == 201, resp.text


def test_chunked_upload_over_its_own_cap_is_413(recoservice_factory):
    reco = recoservice_factory(demo=False, extra_args=["--max-catalog-mb", "0.01"])
    model = requests.post(f"{reco.base_url}/models", json={"modelName": "m"},
                          headers=reco.headers(), timeout=10).json()["id"]

    def lines() -> Iterator[bytes]:
        for i in range(2000):
            yield f"ITEM-{i},Name {i},Cat\n".encode()

    big = requests.post(f"{reco.base_url}/models/{model}/catalog", data=lines(), timeout=30,
                        headers={**reco.headers(), "Content-Type": "application/octet-stream"})
    # Uploads keep their own (larger) cap: 0.01 MB here, over the 1 MB JSON cap by default.
    small = requests.post(f"{reco.base_url}/models/{model}/catalog", timeout=30,
                          data=b"ITEM-1,One,Cat\n" * 500,
                          headers={**reco.headers(), "Content-Type": "application/octet-stream"})

    assert big.status_code == 413
    assert "10,485 bytes" in big.json()["error"]["message"]
    assert small.status_code == 200, small.text


# ------------------------------------------------------------------------------- fault routes


def test_fault_routes_do_not_exist_without_the_faults_option(recoservice_factory):
    reco = recoservice_factory(demo=False, faults_routes=False)

    resp = requests.put(f"{reco.base_url}/admin/faults", headers=reco.admin_headers(),
                        json={"rules": [{"target": "submit", "action": "status",
                                         "status": 503}]}, timeout=10)

    assert resp.status_code == 404


@pytest.mark.parametrize("admin", [None, "wrong-admin-key", "KEY"])
def test_fault_routes_need_the_admin_key_besides_a_subscription_key(reco, admin):
    reco.set_faults([{"target": "job", "action": "stuck"}])
    headers = reco.headers()
    if admin:
        headers["Recoservice-Admin-Key"] = reco.key if admin == "KEY" else admin

    put = requests.put(f"{reco.base_url}/admin/faults", json={"rules": []}, headers=headers,
                       timeout=10)
    get = requests.get(f"{reco.base_url}/admin/faults", headers=headers, timeout=10)

    assert put.status_code == get.status_code == 403
    assert reco.faults() == [{"target": "job", "action": "stuck", "count": 1}]


def test_admin_key_alone_is_not_a_subscription_key(reco):
    resp = requests.get(f"{reco.base_url}/models", timeout=10,
                        headers={KEY_HEADER: reco.admin_key})

    assert resp.status_code == 401


def test_unauthenticated_requests_never_fire_or_consume_a_fault(reco):
    reco.set_faults([{"target": "submit", "action": "status", "status": 503},
                     {"target": "status", "action": "hang", "seconds": 20}])

    no_key = requests.post(f"{reco.base_url}/batchjobs", json={}, timeout=10)
    wrong = requests.post(f"{reco.base_url}/batchjobs", json={}, timeout=10,
                          headers={KEY_HEADER: "wrong"})
    started = time.monotonic()
    status = requests.get(f"{reco.base_url}/operations/x", timeout=10)
    elapsed = time.monotonic() - started

    assert (no_key.status_code, wrong.status_code, status.status_code) == (401, 401, 401)
    assert elapsed < 5
    assert [rule["count"] for rule in reco.faults()] == [1, 1]
    assert requests.post(f"{reco.base_url}/batchjobs", json={}, headers=reco.headers(),
                         timeout=10).status_code == 503


def test_faults_option_without_an_admin_key_refuses_to_start(tmp_path):
    env = {**os.environ, "RECOSERVICE_KEYS": "k1"}
    env.pop("RECOSERVICE_ADMIN_KEYS", None)

    proc = subprocess.run([sys.executable, "-m", "recoservice", "serve", "--port", "1",
                           "--state-dir", str(tmp_path), "--faults"], env=env,
                          capture_output=True, text=True, timeout=60)

    assert proc.returncode == 2
    assert "admin key" in proc.stderr
