"""recobatch.notify and its settings: the event, the signature, the URL rules."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from recobatch import notify
from recobatch.errors import ConfigurationError
from recobatch.settings import notify_url

MARKER = {"kind": "success", "instanceId": "rb-1", "inputName": "a.json",
          "input": {"container": "batch-input", "name": "a.json"},
          "writtenAt": "2026-01-01T00:00:00+00:00"}


def test_event_is_a_cloudevent_carrying_the_marker():
    event = notify.event(MARKER, "my-app")

    assert event == {"specversion": "1.0", "id": "rb-1", "type": "recobatch.run.succeeded",
                     "source": "/recobatch/my-app", "subject": "batch-input/a.json",
                     "time": "2026-01-01T00:00:00+00:00", "datacontenttype": "application/json",
                     "data": MARKER}


def test_signature_is_the_hex_hmac_sha256_of_the_body():
    body = notify.body_of(notify.event(MARKER, "x"))

    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()

    assert notify.signature(body, "s3cret") == f"sha256={expected}"
    assert notify.verify(body, f"sha256={expected}", "s3cret")
    assert not notify.verify(body + b" ", f"sha256={expected}", "s3cret")
    assert not notify.verify(body, None, "s3cret")


@pytest.mark.parametrize("url", ["https://hooks.example.com/x?code=1", "http://127.0.0.1:9/x",
                                 "http://localhost/x"])
def test_https_or_loopback_urls_are_accepted(url):
    assert notify_url({"BATCH_NOTIFY_URL": url}) == url


@pytest.mark.parametrize("url", ["http://hooks.example.com/x?code=SECRET", "ftp://h/x",
                                 "https://user:SECRET@h/x", "not a url"])
def test_other_urls_are_refused_without_echoing_them(url):
    with pytest.raises(ConfigurationError) as caught:
        notify_url({"BATCH_NOTIFY_URL": url})

    assert "SECRET" not in caught.value.message and "BATCH_NOTIFY_URL" in caught.value.message


def test_unset_url_means_no_notification():
    assert notify_url({}) is None and notify_url({"BATCH_NOTIFY_URL": " "}) is None


def test_an_unreachable_receiver_is_a_retry_naming_the_host_only():
    attempt = notify.deliver("http://127.0.0.1:9/hook?token=abc", b"{}", "s")

    assert attempt.outcome == notify.RETRY and attempt.status is None
    assert "token" not in attempt.message and "127.0.0.1" in attempt.message
