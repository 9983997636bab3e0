"""devhost's pure helpers, in process: routes, trigger paths, action flattening, inputs."""

from __future__ import annotations

import json
import re
import time

import pytest

from devhost.__main__ import task_hub
from devhost.blobtrigger import BlobPath, quoted
from devhost.durable import events as ev
from devhost.durable.client_api import _json_text
from devhost.durable.clock import Clock, iso
from devhost.durable.episode import _diverges, _retry_delay_ms
from devhost.durable.store import Store, post_event
from devhost.http import route_path
from devhost.services import REPO_ROOT


@pytest.mark.parametrize(("route", "path"), [
    ("batches", "/api/batches"),
    ("batches/{id}/cancel", "/api/batches/{id}/cancel"),
    ("items/{id:int}/{name?}", "/api/items/{id}/{name}"),
    ("files/{*rest}", "/api/files/{rest:.*}"),
])
def test_route_templates_become_aiohttp_paths(route: str, path: str) -> None:
    assert route_path(route, "api") == path


def test_blob_path_resolves_settings_and_matches_names(monkeypatch) -> None:
    monkeypatch.setenv("IN_CONTAINER", "batch-input")

    path = BlobPath.parse("%IN_CONTAINER%/drop/{name}.json")

    assert (path.container, path.prefix) == ("batch-input", "drop/")
    assert path.pattern.match("drop/a/b.json") and not path.pattern.match("drop/a.txt")


def test_blob_path_names_a_missing_setting() -> None:
    with pytest.raises(KeyError, match="NOT_SET_ANYWHERE"):
        BlobPath.parse("%NOT_SET_ANYWHERE%/{name}")


def test_etag_is_quoted_once() -> None:
    assert quoted("0x1") == '"0x1"' and quoted('"0x1"') == '"0x1"'


def test_flatten_expands_compound_actions_in_order() -> None:
    call = {"actionType": ev.CALL_ACTIVITY, "functionName": "a"}
    timer = {"actionType": ev.CREATE_TIMER, "fireAt": "x"}
    wait = {"actionType": ev.WAIT_EVENT, "externalEventName": "go"}
    nested = {"actionType": ev.WHEN_ANY, "compoundActions": [
        {"actionType": ev.WHEN_ALL, "compoundActions": [call, call]}, timer]}

    flat = ev.flatten([[call, nested, wait]])

    assert [ev.action_key(a) for a in flat] == [[0, "a"], [0, "a"], [0, "a"], [5, ""],
                                                [6, "go"]]


def test_divergence_names_the_action() -> None:
    recorded = [[0, "a"], [5, ""]]
    flat = [{"actionType": 0, "functionName": "a"}, {"actionType": 0, "functionName": "b"}]

    message = _diverges(recorded, flat)

    assert message is not None
    assert "action #1" in message and "expected CreateTimer, got CallActivity 'b'" in message
    assert _diverges(recorded[:1], flat) is None


def test_retry_delay_backs_off_up_to_the_cap() -> None:
    options = {"firstRetryIntervalInMilliseconds": 1000, "backoffCoefficient": 2,
               "maxRetryIntervalInMilliseconds": 3000}

    assert [_retry_delay_ms(options, n) for n in (1, 2, 3)] == [1000, 2000, 3000]


def test_inputs_posted_by_the_sdk_and_by_curl_give_the_same_json_text() -> None:
    sdk_body = json.dumps(json.dumps({"a": 1})).encode()  # the SDK double-encodes
    curl_body = b'{"a": 1}'

    assert json.loads(_json_text(sdk_body)) == json.loads(_json_text(curl_body)) == {"a": 1}
    assert _json_text(b'"plain"') == '"plain"' and _json_text(b"") is None


def test_fast_timestamps_give_the_same_instant_as_dateutil() -> None:
    from azure.durable_functions.models.history.HistoryEvent import HistoryEvent
    from dateutil.parser import parse

    from devhost.durable import fastparse

    fastparse.install()
    stamp = "2026-11-28T16:00:00.123456Z"

    event = HistoryEvent(EventType=12, EventId=-1, IsPlayed=False, Timestamp=stamp)

    assert event.timestamp == parse(stamp) and event.timestamp.utcoffset().total_seconds() == 0
    assert fastparse._parse("Nov 28 2026 16:00 UTC") == parse("Nov 28 2026 16:00 UTC")
    for host_stamp in ("2026-11-28T16:00:00.9999999Z", "2026-11-28T16:00:00Z",
                       "2026-11-28T16:00:00.12Z"):  # how the extension writes them (.NET)
        assert fastparse._parse(host_stamp) == parse(host_stamp)


def test_clock_after_a_restart_is_not_behind_a_completion_waiting_in_an_inbox(tmp_path) -> None:
    # A timer fired (or an activity completed) on a fast clock, then the host died before the
    # instance's next episode stored the clock: the restarted clock must not go back before it.
    store = Store(tmp_path / "devhost.db")
    ahead = time.time() + 3600
    with store.tx() as db:
        post_event(db, "i1", 0, ev.event(ev.TIMER_FIRED, ahead, TimerId=0, FireAt=iso(ahead)))

    clock = Clock(store, scale=1.0)

    assert clock.now() >= ahead



@pytest.fixture
def no_chmod(monkeypatch):
    """``os.chmod``/``Path.chmod`` fail: a file must be private from its creation on."""
    import os
    from pathlib import Path

    def refuse(*_args, **_kwargs):
        raise AssertionError("the file was created readable by others, then chmod-ed")

    monkeypatch.setattr(os, "chmod", refuse)
    monkeypatch.setattr(Path, "chmod", refuse)
    old_umask = os.umask(0)  # the mode must not depend on a strict umask
    yield
    os.umask(old_umask)


def test_private_files_are_created_with_mode_0600(tmp_path, no_chmod):
    import stat

    from devhost.run import write_private

    path = tmp_path / "function.key"
    write_private(path, "secret-key")

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "secret-key"


def test_a_wider_existing_private_file_is_narrowed_before_it_is_rewritten(tmp_path):
    import os
    import stat

    from devhost.run import write_private

    path = tmp_path / "local.settings.json"
    path.write_text("old")
    os.chmod(path, 0o644)

    write_private(path, "new")

    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == "new"


def test_task_hub_name_is_resolved_from_the_app_setting_host_json_names(monkeypatch) -> None:
    monkeypatch.setenv("TASKHUB_NAME", "RecobatchStaging")

    assert task_hub(REPO_ROOT) == "RecobatchStaging"  # host.json: "hubName": "%TASKHUB_NAME%"
    sample = json.loads((REPO_ROOT / "local.settings.sample.json").read_text())["Values"]
    assert sample["TASKHUB_NAME"] == "RecobatchHub"


@pytest.mark.parametrize(("value", "message"), [
    (None, "app setting 'TASKHUB_NAME' (host.json extensions.durableTask.hubName) is not set"),
    ("recobatch-hub", "must be 3-45 letters and digits"),
])
def test_a_missing_or_invalid_task_hub_name_stops_the_start(monkeypatch, value, message) -> None:
    if value is None:
        monkeypatch.delenv("TASKHUB_NAME", raising=False)
    else:
        monkeypatch.setenv("TASKHUB_NAME", value)

    with pytest.raises(KeyError, match=re.escape(message)):
        task_hub(REPO_ROOT)


def test_walk_stops_at_the_first_action_that_has_not_completed() -> None:
    from devhost.durable.replay import walk

    call = {"actionType": ev.CALL_ACTIVITY, "functionName": "a"}
    timer = {"actionType": ev.CREATE_TIMER, "fireAt": "x", "isCanceled": False}
    cancelled = {**timer, "isCanceled": True}
    actions = [[call, {"actionType": ev.WHEN_ANY, "compoundActions": [call, timer]},
                {"actionType": ev.WHEN_ALL, "compoundActions": [call, cancelled]}, call]]
    finished = {0, 2}

    assert walk(actions, 2, lambda i, _a: i in finished) == (5, True)  # WhenAll waits for #3
    assert walk(actions, 2, lambda i, _a: i in finished | {3}) == (6, True)
    assert walk(actions, 2, lambda i, _a: True) == (6, False)
    # the Original schema: one Task.WhenAny per inner list
    assert walk([[call, timer], [call]], 0, lambda i, _a: i == 1) == (3, True)


def test_custom_status_limit_counts_utf16_kilobytes_rounded_down() -> None:
    from devhost.durable.replay import custom_status_error

    assert custom_status_error({"p": "x" * 8690}) is None  # 8,698 chars = 16.99 KB
    assert "current payload size is 17 KB" in custom_status_error({"p": "x" * 8700})
    assert "must not exceed 16 KB" in custom_status_error({"p": "é" * 8700})
