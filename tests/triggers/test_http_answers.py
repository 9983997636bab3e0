"""What the HTTP API hands out: only the app's own URLs, never the Durable extension's system
key; a failed run's status is a code and a sentence, never a stack trace or SDK text."""

from __future__ import annotations

import json
import uuid

import requests


def _all_text(resp: requests.Response) -> str:
    return resp.text + "\n" + "\n".join(f"{k}: {v}" for k, v in resp.headers.items())


def test_start_answers_the_apps_own_urls_and_no_system_key(app, demo_items):
    body = {"input": {"requests": [{"SeedItems": [demo_items[11], demo_items[12]]}]},
            "job": {"numberOfResults": 2}}

    # the caller's key in the query string must not come back either
    resp = requests.post(f"{app.api}/batches?code={app.master_key}", json=body, timeout=30)

    assert resp.status_code == 202
    answer = resp.json()
    instance_id = answer["instanceId"]
    assert answer["statusUri"] == f"{app.api}/batches/{instance_id}"
    assert answer["cancelUri"] == f"{app.api}/batches/{instance_id}/cancel"
    assert resp.headers["Location"] == answer["statusUri"]
    text = _all_text(resp)
    assert app.master_key not in text
    assert "code=" not in text and "systemKey" not in text
    assert "/runtime/webhooks/" not in text
    assert app.call("GET", answer["statusUri"][len(app.api):]).status_code in (200, 202)
    app.wait_done(instance_id)


def test_a_failed_runs_status_is_a_code_and_a_sentence_only(app):
    # A run whose orchestrator raises (an input no starter would give): the host records the
    # exception text, with its traceback, as the instance's output.
    instance_id = "rb-" + uuid.uuid4().hex
    start = requests.post(
        f"{app.base_url}/runtime/webhooks/durabletask/orchestrators/"
        f"batch_orchestrator/{instance_id}", params={"code": app.master_key},
        data=json.dumps({"unexpected": True}), timeout=30)
    assert start.status_code == 202

    done = app.wait_done(instance_id)

    assert done["runtimeStatus"] == "Failed"
    assert set(done["result"]) == {"code", "message"}
    assert done["result"]["code"] == "InternalError"
    message = done["result"]["message"]
    assert "Traceback" not in message and "File \"" not in message and "\n" not in message
    assert "KeyError" not in message and "Orchestrator function" not in message
    assert message.endswith(".")
