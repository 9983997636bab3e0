"""The batch runner in-process: real State, real Scorer on the demo model, real Azurite blobs.

These see what HTTP polling cannot catch reliably: every progress step, and a cancel that
arrives between two steps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobSasPermissions, generate_blob_sas

from recoservice import batch_runner
from recoservice.batch import JobSpec, parse_job
from recoservice.batch_runner import run_job
from recoservice.demo import ensure_demo
from recoservice.faults import FaultBook
from recoservice.scoring import Scorer
from recoservice.state import State


class RecordingState(State):
    """The real State, remembering each operation update (and optionally cancelling)."""

    def __init__(self, state_dir: Path, database: str | None) -> None:
        super().__init__(state_dir, database=database)
        self.updates: list[dict[str, Any]] = []
        self.cancel_when: Any = None

    def update_operation(self, op_id: str, **fields: Any) -> None:
        super().update_operation(op_id, **fields)
        self.updates.append(fields)
        percent = fields.get("percent_complete")
        if percent is not None and self.cancel_when is not None and self.cancel_when(percent):
            self.request_cancel(op_id)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, databases) -> Iterator[tuple[Path, str]]:
    """A state dir with the built demo model (built once for the module)."""
    state_dir = tmp_path_factory.mktemp("runner-state")
    state = State(state_dir, database=databases.url_for(state_dir))
    yield state_dir, ensure_demo(state)
    state.close()


@pytest.fixture
def state(demo: tuple[Path, str], databases) -> Iterator[RecordingState]:
    state = RecordingState(demo[0], databases.url_for(demo[0]))
    yield state
    state.close()


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


def _spec(container: Any, model_id: str, doc: Any, k: int = 3) -> JobSpec:
    container.upload_blob("in.json", json.dumps(doc), overwrite=True)
    return parse_job({
        "input": _loc(container, "in.json", "r"), "output": _loc(container, "out.json", "cw"),
        "error": _loc(container, "err.txt", "cw"),
        "job": {"apiName": "ItemRecommend", "modelId": model_id, "numberOfResults": k}})


def _first_items(state: State, model_id: str, n: int) -> list[str]:
    with state.db() as conn:
        rows = conn.execute("SELECT item_id FROM catalog_items WHERE model_id = ? "
                            "ORDER BY seq LIMIT ?", (model_id, n)).fetchall()
    return [r["item_id"] for r in rows]


def test_progress_moves_from_0_through_slices_to_100(state, demo, container, monkeypatch):
    monkeypatch.setattr(batch_runner, "SLICE_RECOMMENDATIONS", 30)  # 10 requests a slice
    model_id = demo[1]
    seeds = _first_items(state, model_id, 35)
    spec = _spec(container, model_id, {"requests": [{"SeedItems": [s]} for s in seeds]})
    op_id = state.create_operation("batchjob", "k")

    run_job(state, Scorer(state), None, op_id, spec)

    percents = [u["percent_complete"] for u in state.updates if "percent_complete" in u]
    assert percents[:2] == [0, 10] and percents[-2:] == [90, 100]
    middle = percents[2:-2]
    # Four slices (10, 10, 10, 5 requests), each moving it once scored and once written.
    assert len(middle) == 8
    assert middle == sorted(set(middle)) and 10 < middle[0] and middle[-1] < 90
    assert middle[0] == 10 + int(79 * batch_runner.SCORE_SHARE * 10 / 35)  # scored, unwritten
    assert state.get_operation(op_id)["status"] == "Succeeded"
    assert state.get_operation(op_id)["result"] == {"requests": 35, "errors": 0}
    out = json.loads(container.get_blob_client("out.json").download_blob().readall())
    assert [r["request"]["seedItems"] for r in out["results"]] == [[s] for s in seeds]


@pytest.mark.parametrize("when", ["after reading", "after the first slice"])
def test_cancel_between_steps_ends_cancelled_without_output(state, demo, container,
                                                            monkeypatch, when):
    monkeypatch.setattr(batch_runner, "SLICE_RECOMMENDATIONS", 30)
    model_id = demo[1]
    seeds = _first_items(state, model_id, 25)
    spec = _spec(container, model_id, {"requests": [{"SeedItems": [s]} for s in seeds]})
    op_id = state.create_operation("batchjob", "k")
    state.cancel_when = (lambda p: p == 10) if when == "after reading" else (lambda p: 10 < p)

    run_job(state, Scorer(state), None, op_id, spec)

    assert state.get_operation(op_id)["status"] == "Cancelled"
    assert not container.get_blob_client("out.json").exists()
    assert not container.get_blob_client("err.txt").exists()


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
