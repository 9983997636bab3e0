"""The completion notification end to end: devhost → a real local HTTP receiver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from recobatch import notify

pytestmark = pytest.mark.e2e

SECRET = "notify-secret-" + "5f1c9a"


class Receiver:
    """A webhook on 127.0.0.1: answers from a script (the last answer repeats), keeps what came."""

    def __init__(self, answers: list[int]) -> None:
        self.answers = list(answers)
        self.received: list[tuple[dict[str, str], bytes, int]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = (receiver.answers.pop(0) if len(receiver.answers) > 1
                          else receiver.answers[0])
                receiver.received.append((dict(self.headers.items()), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hooks/recobatch?token=abc"

    def delivered(self) -> list[tuple[dict[str, str], bytes, int]]:
        return [r for r in self.received if 200 <= r[2] < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made: list[Receiver] = []

    def make(answers: list[int]) -> Receiver:
        made.append(Receiver(answers))
        return made[-1]

    yield make  # type: ignore[misc]
    for r in made:
        r.close()


def _wait_done(app, instance_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = app.get(f"/batches/{instance_id}").json()
        if status.get("runtimeStatus") in ("Completed", "Failed", "Terminated"):
            return status
        time.sleep(0.3)
    raise AssertionError(f"run {instance_id} did not finish")


def test_signed_cloudevent_after_the_marker_one_per_run_retried_after_a_503(
        app_factory, receiver, demo_items, dump_sqlite):
    hook = receiver([503, 204])
    app = app_factory(BATCH_NOTIFY_URL=hook.url, BATCH_NOTIFY_SECRET=SECRET)

    app.upload("notified.json", json.dumps({"requests": [{"SeedItems": demo_items[:2]}]}))
    marker, manifest = app.wait_for_marker("notified.json")
    status = _wait_done(app, manifest["instanceId"])

    assert marker == "_SUCCESS"
    assert [r[2] for r in hook.received] == [503, 204]  # tried again after the 503
    headers, body, _ = hook.delivered()[0]
    assert len(hook.delivered()) == 1
    assert notify.verify(body, headers.get(notify.SIGNATURE_HEADER), SECRET)
    assert headers["Content-Type"].startswith("application/cloudevents+json")
    event = json.loads(body)
    assert event["specversion"] == "1.0" and event["type"] == "recobatch.run.succeeded"
    assert event["id"] == manifest["instanceId"]
    assert event["subject"] == f"{app.settings['BATCH_INPUT_CONTAINER']}/notified.json"
    assert event["source"] == "/recobatch/local"
    assert event["data"] == manifest  # the marker document as written
    assert status["result"]["notification"]["outcome"] == "Delivered"
    assert status["result"]["notification"]["attempts"] == 2
    for where, text in {"devhost log": app.service.log.read_text(errors="replace"),
                        "history": dump_sqlite(app.workdir / "state" / "devhost.db")}.items():
        assert SECRET not in text and "token=abc" not in text, where


def test_failed_run_sends_a_failed_event(app_factory, receiver):
    hook = receiver([200])
    app = app_factory(BATCH_NOTIFY_URL=hook.url)

    app.upload("broken.json", "{not json")
    marker, manifest = app.wait_for_marker("broken.json")
    _wait_done(app, manifest["instanceId"])

    assert marker == "_FAILED"
    (headers, body, _), = hook.delivered()
    assert json.loads(body)["type"] == "recobatch.run.failed"
    assert notify.SIGNATURE_HEADER not in headers  # no secret, no signature


def test_no_event_when_the_url_is_unset(app_factory, receiver, demo_items):
    hook = receiver([204])
    app = app_factory()

    app.upload("quiet.json", json.dumps({"requests": [{"SeedItems": demo_items[:1]}]}))
    marker, manifest = app.wait_for_marker("quiet.json")
    status = _wait_done(app, manifest["instanceId"])

    assert marker == "_SUCCESS"
    assert hook.received == []
    assert "notification" not in status["result"]
