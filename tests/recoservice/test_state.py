"""State: operations API shape, cancel, thread safety, restart recovery (in process)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from recoservice.state import RESTART_MESSAGE, key_hash


def test_operation_round_trip_has_the_api_shape(tmp_path: Path, state_factory):
    state = state_factory(tmp_path)
    op_id = state.create_operation("BatchScoring", "key-1", "http://x/y")

    state.update_operation(op_id, status="Running", percent_complete=50, message="half")
    before_result = state.get_operation(op_id)
    state.update_operation(op_id, status="Succeeded", result={"n": 3})
    after = state.get_operation(op_id)

    assert len(op_id) == 32 and int(op_id, 16) >= 0
    assert "result" not in before_result
    assert (before_result["status"], before_result["percentComplete"],
            before_result["message"]) == ("Running", 50, "half")
    assert after["result"] == {"n": 3}
    assert after["resourceLocation"] == "http://x/y"
    assert after["type"] == "BatchScoring"
    assert state.operation_owner(op_id) == key_hash("key-1")
    assert state.get_operation("missing") is None


def test_request_cancel_only_moves_active_operations(tmp_path: Path, state_factory):
    state = state_factory(tmp_path)
    running = state.create_operation("k", "key")
    state.update_operation(running, status="Running")
    done = state.create_operation("k", "key")
    state.update_operation(done, status="Succeeded")

    assert state.request_cancel(running) is True
    assert state.is_cancel_requested(running) is True
    assert state.get_operation(running)["status"] == "Cancelling"
    assert state.request_cancel(done) is False
    assert state.is_cancel_requested(done) is False
    assert state.request_cancel("unknown") is False


@pytest.mark.sqlite_only
def test_restart_marks_active_operations_failed(tmp_path: Path, state_factory):
    state = state_factory(tmp_path)
    ids = {status: state.create_operation("k", "key") for status in
           ("NotStarted", "Running", "Cancelling", "Succeeded")}
    for status, op_id in ids.items():
        state.update_operation(op_id, status=status)

    restarted = state_factory(tmp_path)

    statuses = {s: restarted.get_operation(i)["status"] for s, i in ids.items()}
    assert statuses == {"NotStarted": "Failed", "Running": "Failed", "Cancelling": "Failed",
                        "Succeeded": "Succeeded"}
    assert restarted.get_operation(ids["Running"])["message"] == RESTART_MESSAGE


def test_threads_update_operations_without_losing_writes(tmp_path: Path, state_factory):
    state = state_factory(tmp_path)
    op_ids = [state.create_operation("k", "key") for _ in range(8)]

    def work(op_id: str) -> None:
        for percent in range(1, 51):
            state.update_operation(op_id, percent_complete=percent)
            with state.db() as conn:   # nested use joins the same transaction
                with state.db() as inner:
                    inner.execute("SELECT 1")
                conn.execute("SELECT 1")

    threads = [threading.Thread(target=work, args=(op_id,)) for op_id in op_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [state.get_operation(op_id)["percentComplete"] for op_id in op_ids] == [50] * 8


def test_failed_transaction_rolls_back(tmp_path: Path, state_factory):
    state = state_factory(tmp_path)
    op_id = state.create_operation("k", "key")

    try:
        with state.db() as conn:
            conn.execute("UPDATE operations SET status = 'Running' WHERE id = ?", (op_id,))
            raise RuntimeError("boom")
    except RuntimeError:
        pass

    assert state.get_operation(op_id)["status"] == "NotStarted"
