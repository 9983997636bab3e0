"""Issue 7: a batch job's blob URLs reach only the hosts they were checked against: no spelling
of another host, and no redirect, ever makes the service connect to it."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from test_batch import catalog_ids, job_body, put_input, submit, wait_op


class _Listener:
    """A TCP listener on 127.0.0.2 that counts every connection made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.2", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[_Listener]:
    server = _Listener()
    yield server
    server.close()


def _spellings(port: int) -> list[str]:
    """Ways to write a URL that reaches 127.0.0.2:port while looking like an allowed host."""
    return [
        f"http://127.0.0.2:{port}\\@127.0.0.1/acct/",             # backslash ends urllib3's host
        f"http://127.0.0.2:{port}\\@acct.blob.core.windows.net/",
        f"http://127.0.0.2:{port}\\.blob.core.windows.net/",
        f"HTTP://127.0.0.2:{port}\\@LOCALHOST/",                   # uppercase
        f"http://127.0.0.1@127.0.0.2:{port}/acct/",                # user info
        f"http://acct.blob.core.windows.net:x@127.0.0.2:{port}/",
        f"http://127.0.0.%32:{port}/acct/",                        # percent-encoding
        f"http://127.0.0.2.:{port}/acct/",                         # trailing dot
        f"http://2130706434:{port}/acct/",                         # IPv4 integer
        f"http://0177.0.0.2:{port}/acct/",                         # octal
        f"http://0x7f000002:{port}/acct/",                         # hex
        f"http://127.2:{port}/acct/",                              # short form
        f"http://[::ffff:127.0.0.2]:{port}/acct/",                 # IPv4-mapped IPv6
        f"http://１２７.0.0.2:{port}/acct/",                        # full-width digits
        f"http://127.0.0.2:{port}/acct/",                          # plain, not allowed
    ]


def test_no_spelling_of_a_disallowed_host_is_ever_connected_to(reco, container, listener):
    ids = catalog_ids(reco)
    put_input(container, {"requests": [{"SeedItems": [ids[0]]}]})
    answers = {}
    for spelling in _spellings(listener.port):
        for field in ("input", "output", "error"):
            body = job_body(reco, container)
            body[field]["baseLocation"] = spelling
            answers[(spelling, field)] = submit(reco, body)
    time.sleep(1.0)

    assert {k: r.status_code for k, r in answers.items() if r.status_code != 400} == {}
    assert all("baseLocation" in r.json()["error"]["message"] for r in answers.values())
    assert listener.connections == 0
    # The legitimate Azurite location still works.
    resp = submit(reco, job_body(reco, container))
    assert resp.status_code == 202, resp.text
    assert wait_op(reco, resp.headers["Operation-Location"])["status"] == "Succeeded"
    assert listener.connections == 0


@pytest.mark.parametrize(("field", "value"), [
    ("relativeLocation", "c\\@127.0.0.2/in.json"),
    ("sasBlobToken", "?sig=x#@127.0.0.2"),
    ("sasBlobToken", "?sig=x y"),
])
def test_relative_location_and_token_cannot_hide_another_host(reco, container, field, value):
    body = job_body(reco, container)
    body["input"][field] = value

    resp = submit(reco, body)

    assert resp.status_code == 400
    assert f"input.{field}" in resp.json()["error"]["message"]


def test_redirect_from_an_allowed_host_is_not_followed(reco, container, listener):
    hits: list[str] = []

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            hits.append(self.command)
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.2:{listener.port}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_HEAD = do_PUT = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        body = job_body(reco, container)
        body["input"]["baseLocation"] = f"http://127.0.0.1:{server.server_port}/acct/"

        resp = submit(reco, body)
        assert resp.status_code == 202, resp.text
        op = wait_op(reco, resp.headers["Operation-Location"])
    finally:
        server.shutdown()
        server.server_close()

    assert hits, "the allowed host was never asked"
    assert op["status"] == "Failed"
    assert listener.connections == 0
    assert "sig=" not in json.dumps(op)
