"""Operations: ownership by key, cancel, fault rules on status, restart behaviour."""

from __future__ import annotations

import sqlite3
import uuid

import pytest
import requests
from reco_api_helpers import TINY_CATALOG, TINY_USAGE, build, create_model, upload

from recoservice.state import key_hash


def _op_url(reco, loaded: str) -> str:
    resp, _ = build(reco, loaded)
    return resp.headers["Operation-Location"]


def _loaded_model(reco) -> str:
    model_id = create_model(reco)
    upload(reco, model_id, "catalog", TINY_CATALOG)
    upload(reco, model_id, "usage", TINY_USAGE)
    return model_id


def test_operation_of_another_key_is_404(recoservice):
    url = _op_url(recoservice, _loaded_model(recoservice))
    other = recoservice.headers(recoservice.service.extra["keys"][1])

    got = requests.get(url, headers=other, timeout=10)
    deleted = requests.delete(url, headers=other, timeout=10)

    assert (got.status_code, deleted.status_code) == (404, 404)
    assert got.json()["error"]["code"] == "OperationNotFound"
    assert requests.get(url, headers=recoservice.headers(), timeout=10).status_code == 200


def test_unknown_operation_is_404_naming_it(recoservice):
    op_id = uuid.uuid4().hex

    resp = requests.get(f"{recoservice.base_url}/operations/{op_id}",
                        headers=recoservice.headers(), timeout=10)

    assert resp.status_code == 404
    assert op_id in resp.json()["error"]["message"]


def test_cancelling_a_finished_operation_is_409(recoservice):
    url = _op_url(recoservice, _loaded_model(recoservice))

    resp = requests.delete(url, headers=recoservice.headers(), timeout=10)

    assert resp.status_code == 409
    assert "Succeeded" in resp.json()["error"]["message"]


def test_status_fault_rule_answers_before_the_operation(reco):
    url = _op_url(reco, _loaded_model(reco))
    reco.set_faults([{"target": "status", "action": "status", "status": 500}])

    faulty = requests.get(url, headers=reco.headers(), timeout=10)
    healthy = requests.get(url, headers=reco.headers(), timeout=10)

    assert faulty.status_code == 500
    assert set(faulty.json()["error"]) == {"code", "message"}
    assert healthy.status_code == 200


@pytest.mark.sqlite_only
def test_restart_keeps_models_and_builds_and_fails_running_operations(recoservice_factory,
                                                                      tmp_path):
    workdir = tmp_path / "svc"
    first = recoservice_factory(workdir, demo=False)
    model_id = _loaded_model(first)
    resp, _ = build(first, model_id)
    build_id = resp.json()["buildId"]
    first.service.stop()
    # A process killed mid-build leaves these rows behind; write them as it would have.
    db = sqlite3.connect(workdir / "state" / "recoservice.db")
    with db:
        db.execute("INSERT INTO operations (id, key, kind, status, percent, message, created, "
                   "last_action) VALUES ('deadbeef', ?, 'BuildModel', 'Running', 40, '', "
                   "'2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
                   (key_hash(first.key),))
        db.execute("INSERT INTO builds (id, model_id, type, status, params, set_active, "
                   "operation_id, modified) VALUES (?, ?, 'Sar', 'Running', '{}', 1, "
                   "'deadbeef', '2026-01-01T00:00:00.000Z')", (build_id + 1, model_id))
    db.close()

    second = recoservice_factory(workdir, demo=False)

    model = requests.get(f"{second.base_url}/models/{model_id}", headers=second.headers(),
                         timeout=10).json()
    recs = requests.get(f"{second.base_url}/models/{model_id}/recommend/item",
                        params={"itemIds": "ITEM-A", "numberOfResults": 1},
                        headers=second.headers(), timeout=10).json()["recommendedItems"]
    op = requests.get(f"{second.base_url}/operations/deadbeef", headers=second.headers(),
                      timeout=10).json()
    builds = requests.get(f"{second.base_url}/models/{model_id}/builds",
                          headers=second.headers(), timeout=10).json()["builds"]
    assert model["activeBuildId"] == build_id
    assert recs[0]["items"][0]["id"] == "ITEM-B"
    assert op["status"] == "Failed"
    assert op["message"] == "the service restarted while this operation was running"
    assert [(b["id"], b["status"]) for b in builds] == [(build_id, "Succeeded"),
                                                        (build_id + 1, "Failed")]
    _, rebuilt = build(second, model_id)   # the usage uploaded before the restart is kept
    assert rebuilt["status"] == "Succeeded"
    assert rebuilt["result"]["buildId"] > build_id + 1


@pytest.mark.sqlite_only
def test_subscription_key_is_not_stored_in_the_state_database(recoservice_factory, tmp_path,
                                                               dump_sqlite):
    workdir = tmp_path / "svc"
    reco = recoservice_factory(workdir, demo=False)
    url = _op_url(reco, _loaded_model(reco))
    reco.service.stop()

    stored = dump_sqlite(workdir / "state" / "recoservice.db")
    again = recoservice_factory(workdir, demo=False)
    owner = requests.get(url.replace(reco.base_url, again.base_url), headers=again.headers(),
                         timeout=10)

    assert "BuildModel" in stored   # the operation row is really there
    assert reco.key not in stored
    assert owner.status_code == 200


@pytest.mark.sqlite_only
def test_keys_stored_by_an_older_version_are_hashed_at_start(recoservice_factory, tmp_path):
    workdir = tmp_path / "svc"
    first = recoservice_factory(workdir, demo=False)
    first.service.stop()
    db = sqlite3.connect(workdir / "state" / "recoservice.db")
    with db:   # a row as versions that kept the key itself wrote it
        db.execute("INSERT INTO operations (id, key, kind, status, percent, message, created, "
                   "last_action) VALUES ('cafe', ?, 'BuildModel', 'Succeeded', 100, '', "
                   "'2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')", (first.key,))
        db.execute("PRAGMA user_version = 0")
    db.close()

    second = recoservice_factory(workdir, demo=False)
    op = requests.get(f"{second.base_url}/operations/cafe", headers=second.headers(), timeout=10)
    db = sqlite3.connect(workdir / "state" / "recoservice.db")
    (stored_key,) = db.execute("SELECT key FROM operations WHERE id='cafe'").fetchone()
    db.close()

    assert op.status_code == 200
    assert stored_key != first.key
