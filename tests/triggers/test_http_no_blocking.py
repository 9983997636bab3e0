"""The HTTP handlers are ``async def``: the worker runs them on its event loop, so their
storage calls (blocking SDK calls) must run on another thread."""

from __future__ import annotations

import threading

import azure.durable_functions as df
import azure.functions as func
import pytest

from recobatch import storage
from triggers.http_batches import _start


@pytest.fixture
def app_env(app_env, run_async):
    app_env.run_async = run_async
    return app_env


@pytest.fixture
def storage_threads(monkeypatch) -> list[int]:
    """The thread of every ``storage.service_client`` call (the real function still runs)."""
    seen: list[int] = []
    real = storage.service_client

    def spy(*args, **kwargs):
        seen.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(storage, "service_client", spy)
    return seen


@pytest.mark.parametrize("source", ["requests", "blob"])
def test_start_calls_storage_off_the_event_loop(app_env, demo_items, storage_threads, source):
    if source == "blob":
        app_env.container("BATCH_INPUT_CONTAINER").upload_blob(
            "offloop/a.json", b'{"requests": [{"SeedItems": ["%s"]}]}' % demo_items[40].encode(),
            overwrite=True)
        body = b'{"input": {"blob": "offloop/a.json"}}'
    else:
        body = b'{"input": {"requests": [{"SeedItems": ["%s"]}]}}' % demo_items[41].encode()
    client = df.DurableOrchestrationClient(app_env.binding_json())
    req = func.HttpRequest("POST", f"{app_env.api}/batches", body=body)
    loop_thread = threading.get_ident()  # run_async runs the loop in this thread

    answer = app_env.run_async(_start(req, client))

    assert answer.status_code == 202
    assert storage_threads and loop_thread not in storage_threads
