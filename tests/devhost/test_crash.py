"""SIGKILL devhost mid-orchestration, start it again: every instance finishes exactly once."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from devhost_testkit import DevHost


def _wait(predicate, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _history(host: DevHost, instance: str) -> list[str]:
    resp = host.status(instance)
    if resp.status_code not in (200, 202):
        return []
    return [e["EventType"] for e in resp.json().get("historyEvents", [])]


def test_sigkill_during_activity_and_during_timer_completes_once(
        devhost_factory, tmp_path: Path) -> None:
    workdir = tmp_path / "crashhost"
    spec = {"started": f"started-{uuid.uuid4().hex}", "flag": f"flag-{uuid.uuid4().hex}",
            "record": f"record-{uuid.uuid4().hex}.jsonl"}
    host = devhost_factory(workdir)
    instance = host.start("durable_work", spec)
    _wait(host.side_effect(spec["started"]).exists, "the activity to start")

    host.service.stop(kill=True)  # SIGKILL while the activity runs
    host.side_effect(spec["flag"]).touch()
    host = devhost_factory(workdir)  # same state dir: the activity is run again
    _wait(lambda: "TimerCreated" in _history(host, instance), "the 30-minute timer")
    host.service.stop(kill=True)  # SIGKILL while the durable timer is pending
    host = devhost_factory(workdir)
    body = host.wait(instance, timeout=60)

    assert body["runtimeStatus"] == "Completed" and body["output"] == "done"
    records = host.side_effect(spec["record"]).read_text().splitlines()
    assert [json.loads(r) for r in records] == [{"line": instance}]
    events = _history(host, instance)
    assert events.count("TaskScheduled") == 2 and events.count("TaskCompleted") == 2
    assert events.count("TimerFired") == 1


def test_sigkill_during_fan_out_loses_and_duplicates_nothing(devhost_factory,
                                                            tmp_path: Path) -> None:
    workdir = tmp_path / "fanhost"
    host = devhost_factory(workdir)
    instance = host.start("fan_out", 200)
    _wait(lambda: "TaskCompleted" in _history(host, instance), "some activities to complete")

    before = host.status(instance, history=False).json()["runtimeStatus"]
    host.service.stop(kill=True)
    assert before == "Running"  # the kill really was mid-orchestration
    host = devhost_factory(workdir)
    body = host.wait(instance, timeout=90)

    assert body["runtimeStatus"] == "Completed"
    assert body["output"]["results"] == [2 * i for i in range(200)]
    events = _history(host, instance)
    assert events.count("TaskCompleted") == 200 and events.count("TaskScheduled") == 200
