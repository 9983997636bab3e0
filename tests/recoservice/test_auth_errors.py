"""Subscription keys and the v4 error body on every kind of error."""

from __future__ import annotations

import pytest
import requests


def _is_error_body(resp: requests.Response, code: str) -> str:
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]["message"]


@pytest.mark.parametrize("path", ["/models", "/operations/abc", "/admin/faults"])
def test_missing_key_is_401_with_error_body(recoservice, path):
    resp = requests.get(f"{recoservice.base_url}{path}", timeout=10)

    assert resp.status_code == 401
    assert "Ocp-Apim-Subscription-Key" in _is_error_body(resp, "Unauthorized")


def test_wrong_key_is_401_and_does_not_echo_the_key(recoservice):
    resp = requests.get(f"{recoservice.base_url}/models",
                        headers={"Ocp-Apim-Subscription-Key": "wrong-secret-123"}, timeout=10)

    assert resp.status_code == 401
    assert "wrong-secret-123" not in _is_error_body(resp, "Unauthorized")


def test_every_configured_key_is_accepted(recoservice):
    other = recoservice.service.extra["keys"][1]
    assert other != recoservice.key

    resp = requests.get(f"{recoservice.base_url}/models", headers=recoservice.headers(other),
                        timeout=10)

    assert resp.status_code == 200
    assert "models" in resp.json()


@pytest.mark.parametrize("path", ["/openapi.json", "/docs"])
def test_docs_need_no_key(recoservice, path):
    root = recoservice.base_url.split("/recommendations")[0]

    resp = requests.get(f"{root}{path}", timeout=10)

    assert resp.status_code == 200


def test_openapi_lists_routes_under_v4_prefix(recoservice):
    root = recoservice.base_url.split("/recommendations")[0]

    paths = requests.get(f"{root}/openapi.json", timeout=10).json()["paths"]

    assert "/recommendations/v4.0/models/{model_id}/recommend/item" in paths
    assert "/recommendations/v4.0/operations/{operation_id}" in paths


def test_unknown_route_is_404_with_error_body(recoservice):
    resp = requests.get(f"{recoservice.base_url}/no/such/route", headers=recoservice.headers(),
                        timeout=10)

    assert resp.status_code == 404
    assert "/no/such/route" in _is_error_body(resp, "NotFound")


def test_wrong_method_is_405_with_error_body(recoservice):
    resp = requests.put(f"{recoservice.base_url}/models", headers=recoservice.headers(),
                        timeout=10)

    assert resp.status_code == 405
    _is_error_body(resp, "MethodNotAllowed")


@pytest.mark.parametrize("value", ["abc", "0", "101"])
def test_validation_error_is_400_naming_the_field(recoservice, value):
    url = f"{recoservice.base_url}/models/{recoservice.demo_model_id}/recommend/item"

    resp = requests.get(url, params={"itemIds": "SYN-000001", "numberOfResults": value},
                        headers=recoservice.headers(), timeout=10)

    assert resp.status_code == 400
    assert "numberOfResults" in _is_error_body(resp, "BadArgument")


def test_body_that_is_not_json_is_400(recoservice):
    resp = requests.post(f"{recoservice.base_url}/models", data=b"not json",
                         headers={**recoservice.headers(), "Content-Type": "application/json"},
                         timeout=10)

    assert resp.status_code == 400
    _is_error_body(resp, "BadArgument")
