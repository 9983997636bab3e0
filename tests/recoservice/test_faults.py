"""Fault rules: the admin routes, submit and status faults, and loading rules from a file."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import requests

from recoservice.errors import ApiError
from recoservice.faults import FaultBook

# A submit fault fires before the body is validated, so any body shows it.
ANY_BODY: dict[str, Any] = {"input": {}}


def submit(reco: Any) -> requests.Response:
    return requests.post(f"{reco.base_url}/batchjobs", json=ANY_BODY, headers=reco.headers(),
                         timeout=30)


def faults(reco: Any) -> list[dict[str, Any]]:
    resp = requests.get(f"{reco.base_url}/admin/faults", headers=reco.admin_headers(),
                        timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()["rules"]


# ------------------------------------------------------------------------------- admin routes


def test_put_then_get_lists_the_rules_with_defaults(reco):
    reco.set_faults([{"target": "submit", "action": "status", "status": 503, "retryAfter": 7},
                     {"target": "job", "action": "stuck", "count": -1}])

    assert faults(reco) == [
        {"target": "submit", "action": "status", "count": 1, "status": 503, "retryAfter": 7},
        {"target": "job", "action": "stuck", "count": -1},
    ]


def test_delete_clears_the_rules(reco):
    reco.set_faults([{"target": "job", "action": "stuck"}])

    resp = requests.delete(f"{reco.base_url}/admin/faults", headers=reco.admin_headers(),
                           timeout=10)

    assert resp.status_code == 200
    assert faults(reco) == []


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_admin_routes_need_a_valid_key(reco, method):
    resp = requests.request(method, f"{reco.base_url}/admin/faults", json={"rules": []},
                            headers={"Ocp-Apim-Subscription-Key": "wrong"}, timeout=10)

    assert resp.status_code == 401


@pytest.mark.parametrize(("rule", "names"), [
    ({"target": "nowhere", "action": "status"}, "rules[0].target"),
    ({"target": "submit", "action": "hang"}, "rules[0].action"),
    ({"target": "submit", "action": "status", "status": 404}, "rules[0].status"),
    ({"target": "job", "action": "fail", "count": 0}, "rules[0].count"),
    ({"target": "status", "action": "hang", "seconds": -1}, "rules[0].seconds"),
    ({"target": "status", "action": "hang", "seconds": 61}, "rules[0].seconds"),
])
def test_invalid_rule_is_400_naming_it_and_keeps_the_old_rules(reco, rule, names):
    reco.set_faults([{"target": "job", "action": "stuck"}])

    resp = requests.put(f"{reco.base_url}/admin/faults", json={"rules": [rule]},
                        headers=reco.admin_headers(), timeout=10)

    assert resp.status_code == 400
    assert names in resp.json()["error"]["message"]
    assert faults(reco) == [{"target": "job", "action": "stuck", "count": 1}]


# ------------------------------------------------------------------------------- submit


@pytest.mark.parametrize(("status", "code"), [(503, "ServiceUnavailable"),
                                              (429, "TooManyRequests"),
                                              (500, "InternalServerError")])
def test_submit_fault_answers_its_status_with_retry_after(reco, status, code):
    reco.set_faults([{"target": "submit", "action": "status", "status": status,
                      "retryAfter": 3}])

    first, second = submit(reco), submit(reco)

    assert first.status_code == status
    assert first.headers["Retry-After"] == "3"
    assert first.json()["error"]["code"] == code
    # count defaults to 1: the next submit reaches validation.
    assert second.status_code == 400
    assert faults(reco) == []


def test_submit_fault_without_retry_after_has_no_header(reco):
    reco.set_faults([{"target": "submit", "action": "status", "status": 503}])

    resp = submit(reco)

    assert resp.status_code == 503
    assert "Retry-After" not in resp.headers


def test_submit_fault_count_minus_one_fires_forever(reco):
    reco.set_faults([{"target": "submit", "action": "status", "status": 429, "count": -1}])

    statuses = [submit(reco).status_code for _ in range(4)]

    assert statuses == [429, 429, 429, 429]
    assert faults(reco)[0]["count"] == -1


def test_submit_fault_count_three_fires_three_times(reco):
    reco.set_faults([{"target": "submit", "action": "status", "status": 503, "count": 3}])

    statuses = [submit(reco).status_code for _ in range(4)]

    assert statuses == [503, 503, 503, 400]


# ------------------------------------------------------------------------------- status


def _operation_url(reco: Any) -> str:
    """The URL of a real operation: a job that fails at once through a job fault."""
    reco.set_faults([{"target": "job", "action": "fail", "message": "for a status test"}])
    loc = {"authenticationType": "PublicOrSas", "baseLocation": "http://127.0.0.1:9/acct/",
           "relativeLocation": "c/in.json", "sasBlobToken": "?sig=x"}
    body = {"input": loc, "output": loc, "error": loc,
            "job": {"apiName": "ItemRecommend", "modelId": reco.demo_model_id}}
    resp = requests.post(f"{reco.base_url}/batchjobs", json=body, headers=reco.headers(),
                         timeout=30)
    assert resp.status_code == 202, resp.text
    url = resp.headers["Operation-Location"]
    deadline = time.monotonic() + 30
    while requests.get(url, headers=reco.headers(), timeout=10).json()["status"] != "Failed":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return url


def test_status_fault_answers_500_once(reco):
    url = _operation_url(reco)
    reco.set_faults([{"target": "status", "action": "status", "status": 500}])

    first = requests.get(url, headers=reco.headers(), timeout=10)
    second = requests.get(url, headers=reco.headers(), timeout=10)

    assert first.status_code == 500
    assert first.json()["error"]["code"] == "InternalServerError"
    assert second.status_code == 200
    assert second.json()["status"] == "Failed"


def test_status_fault_hang_waits_then_answers(reco):
    url = _operation_url(reco)
    reco.set_faults([{"target": "status", "action": "hang", "seconds": 1.5}])

    started = time.monotonic()
    resp = requests.get(url, headers=reco.headers(), timeout=10)
    elapsed = time.monotonic() - started

    assert resp.status_code == 200
    assert elapsed >= 1.4


def test_status_hang_longer_than_the_client_timeout_times_out(reco):
    url = _operation_url(reco)
    reco.set_faults([{"target": "status", "action": "hang", "seconds": 3}])

    with pytest.raises(requests.Timeout):
        requests.get(url, headers=reco.headers(), timeout=1)


# ------------------------------------------------------------------------------- from a file


def test_faults_file_is_loaded_at_start(recoservice_factory, tmp_path):
    path = tmp_path / "faults.json"
    path.write_text(json.dumps({"rules": [
        {"target": "submit", "action": "status", "status": 503, "retryAfter": 1, "count": 2}]}))

    reco = recoservice_factory(demo=False, faults=path)

    assert faults(reco)[0]["count"] == 2
    assert submit(reco).status_code == 503


def test_from_file_rejects_a_bad_rule(tmp_path):
    path = tmp_path / "faults.json"
    path.write_text(json.dumps({"rules": [{"target": "job", "action": "explode"}]}))

    with pytest.raises(ValueError, match=r"rules\[0\]\.action"):
        FaultBook.from_file(path)


def test_apply_raises_api_error_then_returns_when_used_up():
    book = FaultBook(FaultBook.parse_rules(
        [{"target": "status", "action": "status", "status": 500, "retryAfter": 2}]))

    with pytest.raises(ApiError) as caught:
        asyncio.run(book.apply("status"))
    asyncio.run(book.apply("status"))

    assert caught.value.status == 500
    assert caught.value.headers == {"Retry-After": "2"}
    assert book.rules() == []


def test_job_rules_are_taken_in_order_and_other_targets_untouched():
    book = FaultBook(FaultBook.parse_rules({"rules": [
        {"target": "submit", "action": "status", "status": 429},
        {"target": "job", "action": "skipOutput"},
        {"target": "job", "action": "fail", "message": "m"},
    ]}))

    first, second, third = book.take_job_rule(), book.take_job_rule(), book.take_job_rule()

    assert (first.action, second.action, third) == ("skipOutput", "fail", None)
    assert second.message == "m"
    assert book.rules() == [{"target": "submit", "action": "status", "count": 1,
                             "status": 429}]
