"""The batch runner in-process: real State, real Scorer on the demo model, real Azurite blobs.

These see what HTTP polling cannot catch reliably: every progress step, and a cancel that
arrives between two steps.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobSasPermissions, generate_blob_sas

from recoservice.batch import JobSpec, parse_job
from recoservice.batch_runner import run_job
from recoservice.demo import ensure_demo
from recoservice.faults import FaultBook
from recoservice.scoring import Scorer
from recoservice.state import State


class RecordingState(State):
    """The real State, remembering each operation update (and optionally cancelling)."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self.updates: list[dict[str, Any]] = []
        self.cancel_at_percent: int | None = None

    def update_operation(self, op_id: str, **fields: Any) -> None:
        super().update_operation(op_id, **fields)
        self.updates.append(fields)
        if fields.get("percent_complete") == self.cancel_at_percent:
            self.request_cancel(op_id)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A state dir with the built demo model (built once for the module)."""
    state_dir = tmp_path_factory.mktemp("runner-state")
    return state_dir, ensure_demo(State(state_dir))


@pytest.fixture
def state(demo: tuple[Path, str]) -> RecordingState:
    return RecordingState(demo[0])


def _loc(container: Any, blob: str, permission: str) -> dict[str, str]:
    cred = container.credential
    token = generate_blob_sas(
        account_name=cred.account_name, container_name=container.container_name,
        blob_name=blob, account_key=cred.account_key,
        permission=BlobSasPermissions.from_string(permission),
        expiry=datetime.now(UTC) + timedelta(hours=1))
    return {"authenticationType": "PublicOrSas",
            "baseLocation": container.url.rsplit("/", 1)[0] + "/",
            "relativeLocation": f"{container.container_name}/{blob}",
            "sasBlobToken": "?" + token}


def _spec(container: Any, model_id: str, doc: Any) -> JobSpec:
    container.upload_blob("in.json", json.dumps(doc), overwrite=True)
    return parse_job({
        "input": _loc(container, "in.json", "r"), "output": _loc(container, "out.json", "cw"),
        "error": _loc(container, "err.txt", "cw"),
        "job": {"apiName": "ItemRecommend", "modelId": model_id, "numberOfResults": 3}})


def _first_items(state: State, model_id: str, n: int) -> list[str]:
    with state.db() as conn:
        rows = conn.execute("SELECT item_id FROM catalog_items WHERE model_id = ? "
                            "ORDER BY seq LIMIT ?", (model_id, n)).fetchall()
    return [r["item_id"] for r in rows]


def test_progress_moves_0_10_50_90_100(state, demo, container):
    model_id = demo[1]
    seeds = _first_items(state, model_id, 2)
    spec = _spec(container, model_id, {"requests": [{"SeedItems": seeds}]})
    op_id = state.create_operation("batchjob", "k")

    run_job(state, Scorer(state), None, op_id, spec)

    assert [u.get("percent_complete") for u in state.updates] == [0, 10, 50, 90, 100]
    assert state.get_operation(op_id)["status"] == "Succeeded"
    assert state.get_operation(op_id)["result"] == {"requests": 1, "errors": 0}


@pytest.mark.parametrize("percent", [10, 50])
def test_cancel_between_steps_ends_cancelled_without_output(state, demo, container, percent):
    model_id = demo[1]
    spec = _spec(container, model_id,
                 {"requests": [{"SeedItems": _first_items(state, model_id, 1)}]})
    op_id = state.create_operation("batchjob", "k")
    state.cancel_at_percent = percent

    run_job(state, Scorer(state), None, op_id, spec)

    assert state.get_operation(op_id)["status"] == "Cancelled"
    assert not container.get_blob_client("out.json").exists()


def test_cancel_before_start_never_reads_input(state, demo, container):
    spec = _spec(container, demo[1], {"requests": []})
    container.delete_blob("in.json")  # reading it would fail the job instead
    op_id = state.create_operation("batchjob", "k")
    state.request_cancel(op_id)

    run_job(state, Scorer(state), None, op_id, spec)

    assert state.get_operation(op_id)["status"] == "Cancelled"


def test_empty_requests_list_succeeds_with_empty_results(state, demo, container):
    spec = _spec(container, demo[1], {"requests": []})
    op_id = state.create_operation("batchjob", "k")

    run_job(state, Scorer(state), None, op_id, spec)

    assert state.get_operation(op_id)["status"] == "Succeeded"
    out = json.loads(container.get_blob_client("out.json").download_blob().readall())
    assert out == {"results": []}


def test_skip_output_rule_still_writes_the_error_blob(state, demo, container):
    spec = _spec(container, demo[1], {"requests": [{"Seeds": ["x"]}]})
    op_id = state.create_operation("batchjob", "k")
    rule = FaultBook(FaultBook.parse_rules([{"target": "job", "action": "skipOutput"}]))

    run_job(state, Scorer(state), rule.take_job_rule(), op_id, spec)

    assert state.get_operation(op_id)["status"] == "Succeeded"
    assert not container.get_blob_client("out.json").exists()
    err = container.get_blob_client("err.txt").download_blob().readall()
    assert err == b"request 0: SeedItems missing\n"
