"""Models CRUD: shapes, status codes and field names as the v4 reference."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

import requests
from reco_api_helpers import TINY_CATALOG, TINY_USAGE, build, create_model, upload

MODEL_KEYS = {"id", "name", "description", "createdDateTime", "activeBuildId"}


def test_create_model_answers_201_with_the_v4_fields(recoservice):
    resp = requests.post(f"{recoservice.base_url}/models",
                         json={"modelName": "shop", "description": "my shop"},
                         headers=recoservice.headers(), timeout=10)

    assert resp.status_code == 201
    body = resp.json()
    assert set(body) == MODEL_KEYS
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert (body["name"], body["description"], body["activeBuildId"]) == ("shop", "my shop", None)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["createdDateTime"])
    datetime.fromisoformat(body["createdDateTime"])


def test_created_model_is_listed_and_readable_with_any_key(recoservice):
    model_id = create_model(recoservice, "listed")
    other = recoservice.service.extra["keys"][1]

    listed = requests.get(f"{recoservice.base_url}/models", headers=recoservice.headers(other),
                          timeout=10).json()["models"]
    got = requests.get(f"{recoservice.base_url}/models/{model_id}",
                       headers=recoservice.headers(other), timeout=10)

    assert model_id in [m["id"] for m in listed]
    assert all(set(m) == MODEL_KEYS for m in listed)
    assert got.status_code == 200
    assert got.json()["name"] == "listed"


def test_create_model_without_name_is_400_naming_the_field(recoservice):
    resp = requests.post(f"{recoservice.base_url}/models", json={"description": "x"},
                         headers=recoservice.headers(), timeout=10)

    assert resp.status_code == 400
    assert "modelName" in resp.json()["error"]["message"]


def test_patch_changes_the_description(recoservice):
    model_id = create_model(recoservice)

    resp = requests.patch(f"{recoservice.base_url}/models/{model_id}",
                          json={"description": "new words"}, headers=recoservice.headers(),
                          timeout=10)

    assert resp.status_code == 200
    assert resp.json()["description"] == "new words"
    again = requests.get(f"{recoservice.base_url}/models/{model_id}",
                         headers=recoservice.headers(), timeout=10).json()
    assert again["description"] == "new words"


def test_patch_active_build_of_another_model_is_400(recoservice):
    model_id = create_model(recoservice)
    demo = requests.get(f"{recoservice.base_url}/models/{recoservice.demo_model_id}",
                        headers=recoservice.headers(), timeout=10).json()

    resp = requests.patch(f"{recoservice.base_url}/models/{model_id}",
                          json={"activeBuildId": demo["activeBuildId"]},
                          headers=recoservice.headers(), timeout=10)

    assert resp.status_code == 400
    assert "activeBuildId" in resp.json()["error"]["message"]


def test_patch_unknown_field_is_400_naming_it(recoservice):
    model_id = create_model(recoservice)

    resp = requests.patch(f"{recoservice.base_url}/models/{model_id}", json={"name": "x"},
                          headers=recoservice.headers(), timeout=10)

    assert resp.status_code == 400
    assert "'name'" in resp.json()["error"]["message"]


def test_delete_model_then_it_is_404(recoservice):
    model_id = create_model(recoservice)

    deleted = requests.delete(f"{recoservice.base_url}/models/{model_id}",
                              headers=recoservice.headers(), timeout=10)
    got = requests.get(f"{recoservice.base_url}/models/{model_id}",
                       headers=recoservice.headers(), timeout=10)

    assert deleted.status_code == 204
    assert got.status_code == 404
    assert got.json()["error"]["code"] == "ModelNotFound"
    assert model_id in got.json()["error"]["message"]


def test_unknown_model_is_404_on_every_model_route(recoservice):
    base = f"{recoservice.base_url}/models/{uuid.uuid4()}"
    calls = [("get", ""), ("patch", ""), ("delete", ""), ("get", "/builds"),
             ("get", "/catalog"), ("get", "/recommend/item?itemIds=a"),
             ("get", "/recommend/user?userId=u")]

    codes = [getattr(requests, method)(base + path, headers=recoservice.headers(),
                                       json={} if method == "patch" else None,
                                       timeout=10).status_code
             for method, path in calls]

    assert codes == [404] * len(calls)


def test_delete_model_removes_its_usage_and_build_files(recoservice_factory, tmp_path):
    reco = recoservice_factory(tmp_path / "svc", demo=False)
    model_id = create_model(reco)
    upload(reco, model_id, "catalog", TINY_CATALOG)
    upload(reco, model_id, "usage", TINY_USAGE)
    build(reco, model_id)
    state_dir = tmp_path / "svc" / "state"
    before = sorted(p.name for p in state_dir.glob("*/*.npz") if model_id in p.name)

    requests.delete(f"{reco.base_url}/models/{model_id}", headers=reco.headers(), timeout=10)

    assert len(before) == 3   # usage, SAR model, id maps
    assert [p for p in state_dir.glob("*/*.npz") if model_id in p.name] == []
