"""Builds through the API: 202 + Operation-Location, status, activation, parameter errors."""

from __future__ import annotations

import pytest
import requests
from reco_api_helpers import TINY_CATALOG, TINY_SAR, TINY_USAGE, build, create_model, upload

BUILD_KEYS = {"id", "description", "type", "modelName", "modelId", "status", "statusMessage",
              "startDateTime", "endDateTime", "modifiedDateTime"}
OPERATION_KEYS = {"type", "status", "createdDateTime", "lastActionDateTime", "percentComplete",
                  "message", "resourceLocation", "result"}


@pytest.fixture
def loaded_model(recoservice) -> str:
    model_id = create_model(recoservice)
    upload(recoservice, model_id, "catalog", TINY_CATALOG)
    upload(recoservice, model_id, "usage", TINY_USAGE)
    return model_id


def test_build_answers_202_with_absolute_operation_location_and_build_id(recoservice,
                                                                         loaded_model):
    resp, op = build(recoservice, loaded_model)

    location = resp.headers["Operation-Location"]
    assert location.startswith(f"{recoservice.base_url}/operations/")
    assert len(location.rsplit("/", 1)[1]) == 32
    assert set(resp.json()) == {"buildId"}
    assert isinstance(resp.json()["buildId"], int)
    assert set(op) == OPERATION_KEYS
    assert (op["status"], op["percentComplete"]) == ("Succeeded", 100)
    assert op["result"] == {"buildId": resp.json()["buildId"]}
    build_id = op["result"]["buildId"]
    assert op["resourceLocation"].endswith(f"/models/{loaded_model}/builds/{build_id}")


def test_successful_build_becomes_active_and_is_listed(recoservice, loaded_model):
    resp, _ = build(recoservice, loaded_model)
    build_id = resp.json()["buildId"]

    model = requests.get(f"{recoservice.base_url}/models/{loaded_model}",
                         headers=recoservice.headers(), timeout=10).json()
    builds = requests.get(f"{recoservice.base_url}/models/{loaded_model}/builds",
                          headers=recoservice.headers(), timeout=10).json()["builds"]

    assert model["activeBuildId"] == build_id
    assert [b["id"] for b in builds] == [build_id]
    assert set(builds[0]) == BUILD_KEYS
    assert (builds[0]["status"], builds[0]["type"], builds[0]["modelId"]) \
        == ("Succeeded", "Sar", loaded_model)
    assert builds[0]["modelName"] == "tiny"


def test_set_active_false_keeps_the_active_build_and_ids_increase(recoservice, loaded_model):
    first, _ = build(recoservice, loaded_model)

    second, op = build(recoservice, loaded_model, {
        "buildType": "SAR", "buildParameters": {"sar": {**TINY_SAR, "setActive": False}}})

    model = requests.get(f"{recoservice.base_url}/models/{loaded_model}",
                         headers=recoservice.headers(), timeout=10).json()
    assert op["status"] == "Succeeded"
    assert second.json()["buildId"] > first.json()["buildId"]
    assert model["activeBuildId"] == first.json()["buildId"]


@pytest.mark.parametrize("build_type", ["recommendation", "FBT", "Sar"])
def test_every_build_type_builds(recoservice, loaded_model, build_type):
    _, op = build(recoservice, loaded_model, {"buildType": build_type, "description": "d"})

    assert op["status"] == "Succeeded", op


@pytest.mark.parametrize(("body", "field"), [
    ({"buildType": "ranking"}, "buildType"),
    ({"buildType": "sar", "buildParameters": {"sar": {"similarityFunction": "cosine"}}},
     "similarityFunction"),
    ({"buildType": "sar", "buildParameters": {"sar": {"supportThreshold": 0}}},
     "supportThreshold"),
    ({"buildType": "sar", "buildParameters": {"sar": {"supportThreshold": "3"}}},
     "supportThreshold"),
    ({"buildType": "sar", "buildParameters": {"sar": {"cooccurrenceUnit": "day"}}},
     "cooccurrenceUnit"),
    ({"buildType": "sar", "buildParameters": {"sar": {"halfLifeInDays": -1}}},
     "halfLifeInDays"),
    ({"buildType": "sar", "buildParameters": {"sar": {"enableU2I": "yes"}}}, "enableU2I"),
    ({"buildType": "sar", "buildParameters": {"sar": {"colour": 1}}}, "colour"),
    ({"buildType": "sar", "buildParameters": []}, "buildParameters"),
])
def test_bad_build_parameters_are_400_naming_the_field(recoservice, loaded_model, body, field):
    resp = requests.post(f"{recoservice.base_url}/models/{loaded_model}/builds", json=body,
                         headers=recoservice.headers(), timeout=10)

    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "BadArgument"
    assert field in resp.json()["error"]["message"]


def test_build_without_usage_fails_with_a_clear_message(recoservice):
    model_id = create_model(recoservice)
    upload(recoservice, model_id, "catalog", TINY_CATALOG)

    _, op = build(recoservice, model_id)

    assert op["status"] == "Failed"
    assert "usage" in op["message"]
    builds = requests.get(f"{recoservice.base_url}/models/{model_id}/builds",
                          headers=recoservice.headers(), timeout=10).json()["builds"]
    assert builds[0]["status"] == "Failed"


def test_get_one_build_and_unknown_build_is_404(recoservice, loaded_model):
    resp, _ = build(recoservice, loaded_model)
    base = f"{recoservice.base_url}/models/{loaded_model}/builds"

    one = requests.get(f"{base}/{resp.json()['buildId']}", headers=recoservice.headers(),
                       timeout=10)
    missing = requests.get(f"{base}/1", headers=recoservice.headers(), timeout=10)

    assert one.status_code == 200
    assert set(one.json()) == BUILD_KEYS
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "BuildNotFound"
