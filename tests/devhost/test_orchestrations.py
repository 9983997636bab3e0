"""Durable orchestrations on devhost, driven through the sample app and the real Durable SDK."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests
from devhost_testkit import DevHost


def _events(body: dict) -> list[str]:
    return [e["EventType"] for e in body["historyEvents"]]


def _wait_file(path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_sequence_runs_activities_in_order(devhost: DevHost) -> None:
    instance = devhost.start("sequence", ["Tokyo", "Seattle", "London"])

    body = devhost.wait(instance)

    assert body["runtimeStatus"] == "Completed"
    assert body["output"] == ["Hello Tokyo", "Hello Seattle", "Hello London"]
    assert _events(body).count("TaskScheduled") == 3


def test_fan_out_with_task_all(devhost: DevHost) -> None:
    instance = devhost.start("fan_out", 20)

    body = devhost.wait(instance)

    assert body["output"] == {"sum": sum(2 * i for i in range(20)),
                              "results": [2 * i for i in range(20)]}


def test_task_any_timer_wins(devhost: DevHost) -> None:
    instance = devhost.start("race", {"timerSeconds": 60})  # 0.1 s of wall time at scale 600

    body = devhost.wait(instance)

    assert body["output"] == {"winner": "timer"}
    fired = [e for e in body["historyEvents"] if e["EventType"] == "TimerFired"]
    created = [e for e in body["historyEvents"] if e["EventType"] == "TimerCreated"]
    assert fired[0]["FireAt"] == created[0]["FireAt"]  # the original fireAt is carried


def test_task_any_external_event_wins(devhost: DevHost) -> None:
    instance = devhost.start("race", {"timerSeconds": 36000})  # 60 s of wall time
    devhost.wait(instance, statuses=("Running",))

    assert devhost.raise_event(instance, "go", {"answer": 42}) == 202
    body = devhost.wait(instance, timeout=20)

    assert body["output"] == {"winner": "event", "value": {"answer": 42}}


def test_event_raised_before_the_wait_is_buffered(devhost: DevHost) -> None:
    spec = {"started": f"early-{uuid.uuid4().hex}", "flag": f"flag-{uuid.uuid4().hex}"}
    instance = devhost.start("early_event", spec)
    _wait_file(devhost.side_effect(spec["started"]))

    assert devhost.raise_event(instance, "early", "came first") == 202
    devhost.side_effect(spec["flag"]).touch()
    body = devhost.wait(instance)

    assert body["runtimeStatus"] == "Completed"
    assert body["output"] == "came first"


def test_retry_failing_twice_then_succeeding(devhost: DevHost) -> None:
    instance = devhost.start("retrying", {"key": uuid.uuid4().hex, "failures": 2, "attempts": 3})

    body = devhost.wait(instance)

    assert body["runtimeStatus"] == "Completed"
    assert body["output"] == "ok after 3"
    events = _events(body)
    assert events.count("TaskFailed") == 2
    assert events.count("TaskScheduled") == 3
    assert events.count("TimerCreated") == 2 and events.count("TimerFired") == 2
    # each failure is followed by its retry timer, then the next attempt
    first_failed = events.index("TaskFailed")
    assert events[first_failed + 1:first_failed + 4] == ["TimerCreated", "TimerFired",
                                                         "TaskScheduled"]


def test_retry_exhausted_fails_the_orchestration(devhost: DevHost) -> None:
    instance = devhost.start("retrying", {"key": uuid.uuid4().hex, "failures": 5, "attempts": 2})

    body = devhost.wait(instance)

    assert body["runtimeStatus"] == "Failed"
    assert "flaky failure 2" in body["output"]
    assert _events(body).count("TaskFailed") == 2


def test_sub_orchestrations_complete_and_failures_reach_the_parent(devhost: DevHost) -> None:
    instance = devhost.start("parent")

    body = devhost.wait(instance)

    assert body["runtimeStatus"] == "Completed", body
    assert body["output"]["results"] == [["Hello a", "Hello b"], ["Hello c"]]
    assert "child gave up" in body["output"]["failure"]
    child = devhost.status(f"{instance}-child").json()
    assert child["runtimeStatus"] == "Completed" and child["output"] == ["Hello c"]
    generated = devhost.status(f"{instance}:0").json()
    assert generated["name"] == "sequence" and generated["runtimeStatus"] == "Completed"
    events = _events(body)  # the failing child was retried once, under the same id
    assert events.count("SubOrchestrationInstanceCreated") == 4
    assert events.count("SubOrchestrationInstanceFailed") == 2
    assert devhost.status(f"{instance}:2").json()["runtimeStatus"] == "Failed"


def test_a_child_failing_inside_devhost_fails_into_its_parent(devhost: DevHost) -> None:
    instance = devhost.start("parent_of_broken")

    body = devhost.wait(instance)

    child = devhost.status(f"{instance}-child").json()
    assert child["runtimeStatus"] == "Failed"
    assert body["runtimeStatus"] == "Completed", body
    assert "devhost internal error" in body["output"]


def test_continue_as_new_restarts_with_new_input(devhost: DevHost) -> None:
    instance = devhost.start("counter", {"n": 0, "seen": []})

    body = devhost.wait(instance)

    assert body["runtimeStatus"] == "Completed"
    assert body["output"] == {"n": 3, "seen": [0, 2, 4, 6]}
    assert _events(body)[0] == "ExecutionStarted" and _events(body).count("TaskScheduled") == 1


def test_a_sub_orchestration_that_continues_as_new_completes_once_into_its_parent(
        devhost: DevHost) -> None:
    instance = devhost.start("parent_of_counter")

    body = devhost.wait(instance)

    assert body["runtimeStatus"] == "Completed"
    assert body["output"] == {"n": 3, "seen": [0, 2, 4, 6]}
    events = _events(body)
    assert events.count("SubOrchestrationInstanceCreated") == 1
    assert events.count("SubOrchestrationInstanceCompleted") == 1
    child = devhost.status(f"{instance}-counter").json()
    assert child["runtimeStatus"] == "Completed" and child["output"] == body["output"]


def test_an_activity_failure_reaches_the_orchestrator_as_the_host_formats_it(
        devhost: DevHost) -> None:
    instance = devhost.start("catches", "disk gone")

    body = devhost.wait(instance)

    reason, _, details = body["output"].partition(" \n ")
    assert reason == ("Activity function 'fails_typed' failed:  StorageError: StorageError: "
                      "disk gone")
    cause = json.loads(details)
    assert cause["Message"] == " StorageError: StorageError: disk gone"
    rpc = cause["InnerException"]["Message"]
    assert rpc.startswith("Result: Failure\nException: StorageError: StorageError: disk gone"
                          "\nStack: ")
    assert "in fails_typed" in rpc


def test_custom_status_is_visible_through_the_status_api(devhost: DevHost) -> None:
    instance = devhost.start("with_status")

    running = devhost.wait(instance, statuses=("Running",))
    assert running["customStatus"] == {"phase": "waiting"}
    sdk_view = devhost.api("GET", f"status/{instance}").json()  # the SDK's get_status
    assert sdk_view == {"runtimeStatus": "Running", "output": None,
                        "customStatus": {"phase": "waiting"}}

    devhost.raise_event(instance, "finish", 7)
    body = devhost.wait(instance)
    assert body["customStatus"] == {"phase": "done", "value": 7}
    assert body["output"] == 7


def test_non_determinism_fails_naming_the_diverging_action(devhost: DevHost) -> None:
    instance = devhost.start("nondeterministic")

    body = devhost.wait(instance)

    assert body["runtimeStatus"] == "Failed"
    assert "action #0" in body["output"]
    assert "expected CallActivity 'hello', got CallActivity 'double'" in body["output"]


def test_starting_a_running_instance_id_again_fails(devhost: DevHost) -> None:
    instance = devhost.start("with_status", instance_id=f"dup-{uuid.uuid4().hex}")
    devhost.wait(instance, statuses=("Running",))

    direct = requests.post(f"{devhost.base}/durabletask/orchestrators/with_status/{instance}",
                           timeout=10)
    through_sdk = devhost.api("POST", "start/with_status", params={"id": instance})

    assert direct.status_code == 500
    assert "already exists" in direct.json()["ExceptionMessage"]
    assert through_sdk.status_code == 500  # client.start_new raised inside the function
    devhost.raise_event(instance, "finish", None)
    assert devhost.wait(instance)["runtimeStatus"] == "Completed"


def test_check_status_urls_resolve_and_need_the_key(devhost: DevHost) -> None:
    resp = devhost.api("POST", "start/sequence", data=b'["x"]')
    urls = resp.json()
    devhost.wait(urls["id"])

    ok = requests.get(urls["statusQueryGetUri"], timeout=10)
    no_key = requests.get(urls["statusQueryGetUri"].split("?")[0], timeout=10)

    assert resp.headers["Location"] == urls["statusQueryGetUri"]
    assert ok.status_code == 200 and ok.json()["output"] == ["Hello x"]
    assert no_key.status_code == 401


def test_unknown_instance_terminate_and_purge(devhost: DevHost) -> None:
    assert devhost.status("no-such-instance").status_code == 404
    instance = devhost.start("with_status")
    devhost.wait(instance, statuses=("Running",))
    hook = f"{devhost.base}/runtime/webhooks/durabletask/instances/{instance}"

    terminated = requests.post(f"{hook}/terminate", params={"code": devhost.key,
                                                           "reason": "enough"}, timeout=10)
    body = devhost.wait(instance)
    again = requests.post(f"{hook}/terminate", params={"code": devhost.key}, timeout=10)
    event_after = devhost.raise_event(instance, "finish", 1)
    purged = requests.delete(hook, params={"code": devhost.key}, timeout=10)

    assert terminated.status_code == 202
    assert body["runtimeStatus"] == "Terminated" and body["output"] == "enough"
    assert again.status_code == 410
    assert event_after == 500  # the SDK's raise_event raised: instance gone (410)
    assert purged.status_code == 200 and purged.json() == {"instancesDeleted": 1}
    assert devhost.status(instance).status_code == 404


def test_list_instances_filters_by_status(devhost: DevHost) -> None:
    instance = devhost.start("sequence", ["list"])
    devhost.wait(instance)

    listed = requests.get(f"{devhost.base}/durabletask/instances/",
                          params={"runtimeStatus": "Completed"}, timeout=10).json()

    later = requests.get(f"{devhost.base}/durabletask/instances/",
                         params={"createdTimeFrom": "2999-01-01T00:00:00.000000Z"},
                         timeout=10).json()

    assert instance in {i["instanceId"] for i in listed}
    assert {i["runtimeStatus"] for i in listed} == {"Completed"}
    assert later == []


def test_task_any_of_an_old_and_a_new_task_waits_for_the_new_one_as_the_extension_does(
        devhost: DevHost) -> None:
    # The extension awaits each action in turn, and the SDK's WhenAny lists the new task only:
    # the old one winning schedules nothing more until the new one completes.
    spec = {"started": f"started-{uuid.uuid4().hex}", "flag": f"flag-{uuid.uuid4().hex}"}
    instance = devhost.start("old_and_new", spec)
    _wait_file(devhost.side_effect(spec["started"]))

    assert devhost.raise_event(instance, "old", 1) == 202
    time.sleep(1.0)
    stuck = devhost.status(instance).json()
    devhost.side_effect(spec["flag"]).touch()
    body = devhost.wait(instance)

    assert stuck["runtimeStatus"] == "Running"
    assert [e.get("FunctionName") for e in stuck["historyEvents"]
            if e["EventType"] == "TaskScheduled"] == ["wait_flag"]
    assert body["runtimeStatus"] == "Completed"
    assert body["output"] == {"winner": "old", "after": "Hello after"}


@pytest.mark.parametrize(("pad", "status"), [(8000, "Completed"), (9000, "Failed")])
def test_custom_status_over_16_kb_of_utf16_fails_the_orchestration(devhost: DevHost, pad: int,
                                                                    status: str) -> None:
    instance = devhost.start("big_status", pad)

    body = devhost.wait(instance)

    assert body["runtimeStatus"] == status
    if status == "Failed":
        assert body["output"] == (
            "Orchestrator function 'big_status' failed: The UTF-16 size of the JSON-serialized "
            "payload must not exceed 16 KB. The current payload size is 17 KB.")
