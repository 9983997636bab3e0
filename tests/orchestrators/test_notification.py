"""Replay tests of the completion notification: after the marker, on durable timers."""

from __future__ import annotations

import json

from history import FAIL, drive
from scenarios import batch_responder

from orchestrators.notification import NOTIFY_RETRY_SECONDS

DELIVERED = {"outcome": "Delivered", "httpStatus": 204, "message": "127.0.0.1 answered 204."}
UNAVAILABLE = {"outcome": "Retry", "httpStatus": 503, "message": "127.0.0.1 answered 503."}


def responder(answers: list):
    """The batch responder, with notify_run answering from ``answers`` (the last repeats)."""
    base = batch_responder(2)

    def respond(item, run):
        if item.name == "notify_run":
            return answers.pop(0) if len(answers) > 1 else answers[0]
        if item.name == "write_marker":
            return {"name": "daily/requests.json/_SUCCESS"}
        return base(item, run)

    return respond


def test_no_notification_when_the_run_input_does_not_ask_for_one(batch_run):
    run = batch_run()

    drive(run, responder([DELIVERED]))

    assert "notify_run" not in run.names()
    assert "notification" not in run.output


def test_event_is_sent_once_after_the_marker_with_names_only(batch_run):
    run = batch_run(notify=True)

    drive(run, responder([DELIVERED]))

    assert run.names()[-2:] == ["write_marker", "notify_run"]
    payload = json.loads(run.actions[-1]["input"])
    assert payload == {"instanceId": run.instance_id,
                       "markerName": "daily/requests.json/_SUCCESS"}
    assert run.output["status"] == "Succeeded"
    assert run.output["notification"] == {"outcome": "Delivered", "attempts": 1,
                                          "httpStatus": 204, "message": DELIVERED["message"]}


def test_retry_waits_on_durable_timers_then_delivers(batch_run):
    run = batch_run(notify=True)

    drive(run, responder([UNAVAILABLE, UNAVAILABLE, DELIVERED]))

    tail = run.names()[run.names().index("write_marker"):]
    assert tail == ["write_marker", "notify_run", "timer", "notify_run", "timer", "notify_run"]
    assert run.output["notification"]["outcome"] == "Delivered"
    assert run.output["notification"]["attempts"] == 3


def test_five_tries_over_about_fifteen_minutes_then_failed_without_changing_the_run(batch_run):
    run = batch_run(notify=True)

    drive(run, responder([UNAVAILABLE]))

    assert run.names().count("notify_run") == 5
    assert 600 <= sum(NOTIFY_RETRY_SECONDS) <= 1200
    assert run.output["status"] == "Succeeded"
    assert run.output["notification"]["outcome"] == "Failed"
    assert run.output["notification"]["httpStatus"] == 503


def test_a_refusal_stops_at_once(batch_run):
    run = batch_run(notify=True)
    refused = {"outcome": "Refused", "httpStatus": 400, "message": "refused"}

    drive(run, responder([refused]))

    assert run.names().count("notify_run") == 1
    assert run.output["notification"]["outcome"] == "Refused"


def test_a_failing_activity_is_tried_again(batch_run):
    run = batch_run(notify=True)

    drive(run, responder([(FAIL, "Activity function 'notify_run' failed: StorageError: x"),
                          DELIVERED]))

    assert run.names().count("notify_run") == 2
    assert run.output["notification"]["outcome"] == "Delivered"


def test_a_refused_input_is_notified_too(batch_run):
    run = batch_run(notify=True)

    def respond(item, _run):
        if item.name == "prepare_batch":
            return (FAIL, "Activity function 'prepare_batch' failed: InvalidInput: bad.")
        if item.name == "write_marker":
            return {"name": "daily/requests.json/_FAILED"}
        return DELIVERED

    drive(run, respond)

    assert run.names() == ["prepare_batch", "write_marker", "notify_run"]
    assert run.output["notification"]["outcome"] == "Delivered"
