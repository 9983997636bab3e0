"""The blueprint registers the eleven activities of docs/design.md under their names."""

from __future__ import annotations

import sys

import activities

NAMES = {"prepare_batch", "submit_chunk", "check_operation", "verify_output",
         "cancel_operation", "is_cancel_requested", "merge_results", "write_marker",
         "notify_run", "prepare_rerun", "fill_cache"}


def test_blueprint_registers_each_activity_with_an_activity_trigger_named_payload():
    functions = [builder.build() for builder in activities.bp._function_builders]

    assert {f.get_function_name() for f in functions} == NAMES
    for function in functions:
        (binding,) = function.get_bindings()
        assert binding.get_dict_repr()["type"] == "activityTrigger"
        assert binding.get_dict_repr()["name"] == "payload"


def test_registered_function_calls_the_plain_run(monkeypatch):
    module = sys.modules["activities.is_cancel_requested"]

    monkeypatch.setattr(module, "run", lambda payload: {"echo": payload})
    user_function = activities.is_cancel_requested.build().get_user_function()

    assert user_function({"instanceId": "x"}) == {"echo": {"instanceId": "x"}}
