"""Two recoservice processes on one PostgreSQL database and one Azurite artifact container.

Only with ``RECOSERVICE_TEST_DATABASE=postgresql`` (``make test``'s second pass): SQLite is one
process by design. The replicas share nothing but the database and the container.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
import requests
from reco_api_helpers import TINY_CATALOG, TINY_USAGE, build, create_model, upload
from test_batch import cancel, catalog_ids, get_op, job_body, put_input, submit, wait_op

from recoservice.state import LEASE_MESSAGE

pytestmark = pytest.mark.postgresql_only

LEASE_SECONDS = 2.0


@pytest.fixture
def replicas(recoservice_factory, databases, storage_connection_string, tmp_path):
    """Start ``n`` replicas of one service: one database, one artifact container, short
    leases; each has its own state folder (its artifact cache) and fault rules."""
    database = databases.url_for(tmp_path / "shared")
    env = {"RECOSERVICE_ARTIFACTS_CONNECTION": storage_connection_string}
    container = f"artifacts-{uuid.uuid4().hex[:12]}"

    def start(n: int, demo: bool = True) -> list[Any]:
        return [recoservice_factory(tmp_path / f"replica{i}", demo=demo, database=database,
                                    env=env, extra_args=["--artifacts-container", container,
                                                         "--lease-seconds", str(LEASE_SECONDS)])
                for i in range(n)]
    return start


def test_a_model_built_on_one_replica_scores_on_the_other(replicas):
    first, second = replicas(2, demo=False)
    model_id = create_model(first)
    assert upload(first, model_id, "catalog", TINY_CATALOG).status_code == 200
    assert upload(first, model_id, "usage", TINY_USAGE).status_code == 200

    _, op = build(second, model_id)  # usage file from the container, build to it
    recs = requests.get(f"{first.base_url}/models/{model_id}/recommend/item",
                        params={"itemIds": "ITEM-A", "numberOfResults": 1},
                        headers=first.headers(), timeout=30)

    assert op["status"] == "Succeeded", op
    assert recs.status_code == 200, recs.text
    assert recs.json()["recommendedItems"][0]["items"][0]["id"] == "ITEM-B"


def test_a_catalog_uploaded_through_one_replica_renames_items_on_the_other(replicas):
    first, second = replicas(2, demo=False)
    model_id = create_model(first)
    upload(first, model_id, "catalog", TINY_CATALOG)
    upload(first, model_id, "usage", TINY_USAGE)
    build(first, model_id)

    def top_name(reco: Any) -> str:
        resp = requests.get(f"{reco.base_url}/models/{model_id}/recommend/item",
                            params={"itemIds": "ITEM-A", "numberOfResults": 1},
                            headers=reco.headers(), timeout=30)
        return str(resp.json()["recommendedItems"][0]["items"][0]["name"])

    before = top_name(second)  # loads the build on the second replica
    upload(first, model_id, "catalog", "ITEM-B,Bravissimo,Cat1\n")
    after = top_name(second)

    assert (before, after) == ("Bravo", "Bravissimo")


def test_a_job_submitted_to_one_replica_is_listed_and_cancelled_through_the_other(
        replicas, container):
    first, second = replicas(2)
    put_input(container, {"requests": [{"SeedItems": [catalog_ids(first)[0]]}]})
    first.set_faults([{"target": "job", "action": "stuck"}])
    resp = submit(first, job_body(first, container))
    assert resp.status_code == 202, resp.text
    op_url = resp.headers["Operation-Location"]
    other_url = op_url.replace(first.base_url, second.base_url)
    wait_op(first, op_url, until=("Running",))

    listed = requests.get(f"{second.base_url}/batchjobs", headers=second.headers(), timeout=30)
    cancel(second, other_url)
    op = wait_op(second, other_url)

    assert [j["id"] for j in listed.json()["batchJobs"]] == [resp.json()["batchId"]]
    assert listed.json()["batchJobs"][0]["status"] == "InProgress"
    assert op["status"] == "Cancelled"


def test_one_key_submitting_to_both_replicas_at_once_gets_one_202_and_one_409(
        replicas, container):
    first, second = replicas(2)
    put_input(container, {"requests": [{"SeedItems": [catalog_ids(first)[0]]}]})
    body = job_body(first, container)
    rounds = []
    for _ in range(4):  # a race: several tries, each ends with nothing left running
        for reco in (first, second):
            reco.set_faults([{"target": "job", "action": "stuck"}])
        start = threading.Barrier(2)
        answers: list[requests.Response] = []

        def send(reco: Any, start: threading.Barrier = start,
                 answers: list[requests.Response] = answers) -> None:
            start.wait()
            answers.append(submit(reco, body))

        threads = [threading.Thread(target=send, args=(r,)) for r in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rounds.append(sorted(a.status_code for a in answers))
        for answer in answers:
            if answer.status_code == 202:
                url = answer.headers["Operation-Location"].replace(second.base_url,
                                                                   first.base_url)
                cancel(first, url)
                wait_op(first, url)

    assert rounds == [[202, 409]] * 4


def test_killing_the_replica_running_a_job_fails_it_within_the_lease(replicas, container):
    first, second = replicas(2)
    put_input(container, {"requests": [{"SeedItems": [catalog_ids(first)[0]]}]})
    first.set_faults([{"target": "job", "action": "stuck"}])
    resp = submit(first, job_body(first, container))
    op_url = resp.headers["Operation-Location"].replace(first.base_url, second.base_url)
    wait_op(first, resp.headers["Operation-Location"], until=("Running",))

    first.service.stop(kill=True)
    killed = time.monotonic()
    op = wait_op(second, op_url, timeout=LEASE_SECONDS * 5)
    waited = time.monotonic() - killed
    listed = requests.get(f"{second.base_url}/batchjobs", headers=second.headers(),
                          timeout=30).json()["batchJobs"]
    again = submit(second, job_body(second, container))

    assert op["status"] == "Failed"
    assert op["message"] == LEASE_MESSAGE
    # The lease runs out within LEASE_SECONDS of the last renewal; a heartbeat notices it
    # within a third of that.
    assert waited < LEASE_SECONDS * 2
    assert listed[0]["status"] == "Failed" and listed[0]["endedAt"]
    assert again.status_code == 202, again.text  # the key is free again
    assert wait_op(second, again.headers["Operation-Location"])["status"] == "Succeeded"
    assert get_op(second, op_url)["status"] == "Failed"
