"""POST /api/batches body validation and settings errors, calling the functions' user code.

The requests here are refused before any storage or Durable call, so the client binding points
at a closed local port: a test that reached it would fail loudly.
"""

from __future__ import annotations

import asyncio
import json
import socket

import azure.functions as func
import pytest

from recobatch.limits import MAX_HTTP_BODY_BYTES, MAX_JSON_DEPTH
from recobatch.settings import get_settings
from triggers import get_batch, start_batch

VALID_ENV = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "RECO_ENDPOINT": "http://127.0.0.1:9/recommendations/v4.0",
    "RECO_SUBSCRIPTION_KEY": "not-a-real-key",
    "RECO_MODEL_ID": "00000000-0000-0000-0000-000000000000",
}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unreachable_binding() -> str:
    base = f"http://127.0.0.1:{_closed_port()}"
    urls = {k: f"{base}/x/INSTANCEID" for k in (
        "statusQueryGetUri", "sendEventPostUri", "terminatePostUri", "rewindPostUri",
        "purgeHistoryDeleteUri", "restartPostUri", "suspendPostUri", "resumePostUri")}
    return json.dumps({"taskHubName": "hub", "creationUrls": {
        "createNewInstancePostUri": f"{base}/x", "createAndWaitOnNewInstancePostUri": f"{base}/x"},
        "managementUrls": {"id": "INSTANCEID", **urls}, "rpcBaseUrl": f"{base}/durabletask/"})


def post(body: bytes | str | object, **route: str) -> func.HttpResponse:
    data = body if isinstance(body, bytes) else (
        body.encode() if isinstance(body, str) else json.dumps(body).encode())
    req = func.HttpRequest(method="POST", url="http://127.0.0.1/api/batches", body=data,
                           headers={"content-type": "application/json"}, route_params=route)
    return asyncio.run(start_batch._function._func(req=req, client=unreachable_binding()))


def error_of(resp: func.HttpResponse) -> dict:
    return json.loads(resp.get_body())["error"]


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch):
    for name in list(VALID_ENV) + ["RECO_API_NAME", "BATCH_INPUT_CONTAINER"]:
        monkeypatch.delenv(name, raising=False)
    for name, value in VALID_ENV.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.mark.parametrize(("body", "field"), [
    (b"{not json", "not valid JSON"),
    ([1, 2], "must be a JSON object"),
    ({}, "input is required"),
    ({"input": "a.json"}, "input is required"),
    ({"input": {"blob": "a.json", "requests": [{}]}}, "exactly one of blob or requests"),
    ({"input": {"requests": []}}, "input.requests must be a non-empty"),
    ({"input": {"requests": [{"SeedItems": ["a"]}, "b"]}}, "input.requests[1]"),
    ({"input": {"blob": ""}}, "input.blob"),
    ({"input": {"blob": "../secret.json"}}, "input.blob"),
    ({"input": {"blob": "a.json"}, "job": [1]}, "job must be a JSON object"),
    ({"input": {"blob": "a.json"}, "jobs": {}}, "unknown field 'jobs'"),
])
def test_bad_body_is_400_naming_the_field(settings_env, body, field):
    resp = post(body)

    assert resp.status_code == 400
    assert field in error_of(resp)["message"]
    assert error_of(resp)["code"] == "BadRequest"


def test_unknown_job_setting_is_400_naming_it(settings_env):
    resp = post({"input": {"requests": [{"SeedItems": ["a"]}]}, "job": {"numberOfResult": 3}})

    assert resp.status_code == 400
    assert "job.numberOfResult" in error_of(resp)["message"]


def test_out_of_range_job_setting_is_400(settings_env):
    resp = post({"input": {"requests": [{"SeedItems": ["a"]}]}, "job": {"numberOfResults": 0}})

    assert resp.status_code == 400
    assert "job.numberOfResults" in error_of(resp)["message"]


def test_missing_setting_is_500_naming_the_setting(settings_env, caplog):
    settings_env.delenv("RECO_ENDPOINT")
    get_settings.cache_clear()

    resp = post({"input": {"requests": [{"SeedItems": ["a"]}]}})

    assert resp.status_code == 500
    assert error_of(resp)["code"] == "ConfigurationError"
    assert "RECO_ENDPOINT" in error_of(resp)["message"]
    assert "RECO_ENDPOINT" in caplog.text
    assert VALID_ENV["RECO_SUBSCRIPTION_KEY"] not in resp.get_body().decode()


@pytest.mark.parametrize("bad_id", ["nope", "rb-XYZ", "rb-" + "0" * 31, "rb-" + "0" * 33])
def test_get_with_an_id_we_never_issue_is_404(bad_id):
    req = func.HttpRequest(method="GET", url=f"http://127.0.0.1/api/batches/{bad_id}",
                           body=b"", route_params={"id": bad_id})

    resp = asyncio.run(get_batch._function._func(req=req, client=unreachable_binding()))

    assert resp.status_code == 404
    assert error_of(resp)["code"] == "NotFound"


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_numbers_are_400(settings_env, literal):
    # Python's json accepts NaN/Infinity; the service and the saved file must never see them.
    resp = post(b'{"input": {"requests": [{"SeedItems": ["a"]}]}, "job": {"minimalScore": '
                + literal + b"}}")

    assert resp.status_code == 400
    assert "not valid JSON" in error_of(resp)["message"]


def test_a_body_over_the_limit_is_413_before_it_is_parsed(settings_env):
    # not JSON at all: a parser that ran first would answer 400
    resp = post(b"x" * (MAX_HTTP_BODY_BYTES + 1))

    assert resp.status_code == 413
    assert error_of(resp)["code"] == "BodyTooLarge"
    assert f"{MAX_HTTP_BODY_BYTES:,}" in error_of(resp)["message"]


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5_000, 200_000])
def test_nesting_past_the_depth_limit_is_400(settings_env, depth):
    inner = b"[" * depth + b"]" * depth
    resp = post(b'{"input": {"requests": [{"SeedItems": ["a"]}]}, "job": {"x": ' + inner + b"}}")

    assert resp.status_code == 400
    assert "nested" in error_of(resp)["message"]
    assert str(MAX_JSON_DEPTH) in error_of(resp)["message"]


@pytest.mark.parametrize("name", [
    "a/./b.json", "a//b.json", "../x.json", "a/../b.json", "./a.json", "a\\b.json",
    "/a.json", "a/", "a.json.", "a/b\x00.json", "a\nb.json", " a.json", "a.json ",
    "cafe\u0301.json",  # not NFC: the same name as "café.json" to a reader, not to storage
    "x" * 1025,
])
def test_non_canonical_blob_names_are_400(settings_env, name):
    resp = post({"input": {"blob": name}})

    assert resp.status_code == 400
    assert "input.blob" in error_of(resp)["message"]
    assert len(error_of(resp)["message"]) <= 300


def test_unknown_keys_are_listed_at_most_five_and_bounded(settings_env):
    body = {f"{'k' * 1000}{i}": 1 for i in range(20)}
    body["input"] = {"blob": "a.json"}

    resp = post(body)

    message = error_of(resp)["message"]
    assert resp.status_code == 400
    assert "and 15 more" in message and len(message) <= 300


def test_unknown_keys_of_input_are_listed_bounded(settings_env):
    resp = post({"input": {"blob": "a.json", **{"z" * 5000 + str(i): 1 for i in range(9)}}})

    message = error_of(resp)["message"]
    assert resp.status_code == 400
    assert "and 4 more" in message and len(message) <= 300


def test_unknown_job_setting_with_a_huge_name_is_400_bounded(settings_env):
    resp = post({"input": {"requests": [{"SeedItems": ["a"]}]}, "job": {"q" * 100_000: 1}})

    assert resp.status_code == 400
    assert len(error_of(resp)["message"]) <= 300
