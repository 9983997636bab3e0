"""Redaction: secrets and SAS parameters leave a message before it is cut to length."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from recobatch.client import RecoClient, redact
from recobatch.errors import UpstreamRejected
from recobatch.limits import safe_text

KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def echo_server() -> Iterator[dict]:
    """A local HTTP server answering 400 with the JSON error message put in ``answer``."""
    answer: dict = {"message": ""}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"error": {"code": "BadArgument",
                                         "message": answer["message"]}}).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    answer["url"] = f"http://127.0.0.1:{server.server_port}/recommendations/v4.0"
    yield answer
    server.shutdown()
    server.server_close()


def test_a_key_straddling_the_cut_is_redacted_before_the_message_is_cut(echo_server):
    # the key starts 10 characters before the 500-character cut of the service's message
    echo_server["message"] = "x" * 490 + KEY + " tail"
    client = RecoClient(echo_server["url"], KEY, retries=0)

    with pytest.raises(UpstreamRejected) as caught:
        client._call("POST", "/batchjobs", json={})

    text = str(caught.value)
    assert KEY[:10] not in text and KEY not in text
    assert "***" in text


@pytest.mark.parametrize("leak", [
    "https://a.blob.core.windows.net/c/b?sv=2023&sig=SECRETSIG",
    "url=https%3A%2F%2Fa%2Fc%2Fb%3Fsv%3D2023%26sig%3DSECRETSIG",
    "url=https%3A%2F%2Fa%2Fc%2Fb%3Fsv%3D2023%26sig%3dSECRETSIG",
    "double: b%253Fsig%253DSECRETSIG",
    "plain sig%3DSECRETSIG%26se%3D2030",
])
def test_sas_signatures_are_redacted_also_when_percent_encoded(leak):
    assert "SECRETSIG" not in redact(leak)


def test_safe_text_redacts_then_bounds():
    text = "a" * 295 + "?sig=SECRETSIGNATURE"

    shown = safe_text(text, 300)

    assert "SECRET" not in shown and len(shown) <= 300
