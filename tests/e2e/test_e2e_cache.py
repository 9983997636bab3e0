"""The recommendations cache end to end: devhost runs fill the table, the HTTP API answers."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import uuid
from urllib.parse import urlencode

import pytest
import requests
from azure.data.tables import TableServiceClient

from devhost.services import REPO_ROOT

pytestmark = pytest.mark.e2e
ODD = ["x/y#z?", "back\\slash", "ctl\x01\x1f", "é€😀", "a,b", "~2E.dot", "quote'q"]


def _requests(items: list[str], n: int) -> list[dict]:
    rng = random.Random(29)
    reqs = [{"SeedItems": rng.sample(items, rng.randint(1, 3))} for _ in range(n)]
    reqs += [{"SeedItems": [items[0], odd]} for odd in ODD]  # odd ids beside a real one
    reqs += [{"SeedItems": [items[1], items[2]]}, {"SeedItems": [items[2], items[1]]}]
    return reqs


def _lookup(app, seeds: list[str], **params: str) -> requests.Response:
    # item=... once per id: ids holding a comma survive; items=A,B is tested below
    return app.get("/recommendations?" + urlencode({"item": seeds, **params}, doseq=True))


def _expected(result: dict, metadata: bool) -> list[dict]:
    out = []
    for rec in result["recommendations"]:
        items = [{"id": i["itemId"], **({"name": i["name"]} if metadata else {})}
                 for i in rec["items"]]
        out.append({"items": items, "rating": rec["rating"]})
    return out


def test_a_run_fills_the_cache_and_every_request_is_looked_up_as_in_results_json(
        app_factory, demo_items, storage_connection_string):
    table = "cache" + uuid.uuid4().hex[:10]
    app = app_factory(BATCH_MAX_JOB_BYTES="1500", BATCH_CACHE_TABLE=table)
    reqs = _requests(demo_items, 40)
    app.upload("cached.json", json.dumps({"requests": reqs,
                                          "job": {"includeMetadata": True}}))

    marker, manifest = app.wait_for_marker("cached.json", timeout=180)

    assert marker == "_SUCCESS", manifest
    assert len(manifest["chunks"]) > 1
    model = app.settings["RECO_MODEL_ID"]
    distinct = {frozenset(r["SeedItems"]) for r in reqs}
    assert manifest["cache"]["table"] == table
    assert manifest["cache"]["partition"] == f"{model}.active"
    assert manifest["cache"]["failed"] == 0
    assert manifest["cache"]["rows"] >= len(distinct)
    rows = list(TableServiceClient.from_connection_string(storage_connection_string)
                .get_table_client(table).list_entities())
    assert len(rows) == len(distinct)
    assert {r["instanceId"] for r in rows} == {manifest["instanceId"]}
    results = json.loads(app.read_output("cached.json/results.json"))["results"]
    assert len(results) == len(reqs)
    for result in results:
        seeds = result["request"]["seedItems"]
        answer = _lookup(app, list(reversed(seeds)))  # seed order does not matter
        assert answer.status_code == 200, (seeds, answer.text)
        assert answer.json() == {"recommendedItems": _expected(result, True)}, seeds
        assert answer.headers["Recobatch-Run"] == manifest["instanceId"]
    assert any(r["recommendations"] for r in results
               if any(odd in r["request"]["seedItems"] for odd in ODD))


def test_lookup_answers_404_400_and_a_file_can_opt_out(app_factory, demo_items):
    table = "cache" + uuid.uuid4().hex[:10]
    app = app_factory(BATCH_CACHE_TABLE=table)
    app.upload("on.json", json.dumps({"requests": [{"SeedItems": [demo_items[5]]}]}))
    app.upload("off.json", json.dumps({"requests": [{"SeedItems": [demo_items[6]]}],
                                       "job": {"cache": False}}))
    on = app.wait_for_marker("on.json", timeout=120)[1]
    off = app.wait_for_marker("off.json", timeout=120)[1]
    get = lambda query: app.get(f"/recommendations?{query}")  # noqa: E731

    assert on["cache"]["rows"] == 1 and "cache" not in off
    assert off["job"]["cache"] is False
    assert get(f"items={demo_items[5]}").status_code == 200
    cli = _cli(app, f"{demo_items[5]}")
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert json.loads(cli.stdout) == get(f"items={demo_items[5]}").json()
    assert json.loads(cli.stdout)["recommendedItems"]
    not_cached = _cli(app, demo_items[6])
    assert not_cached.returncode == 1 and "lookup refused (404)" in not_cached.stdout
    assert app.settings["DEVHOST_MASTER_KEY"] not in cli.stdout + not_cached.stdout
    missing = get(f"items={demo_items[6]}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NotCached"
    assert demo_items[6] in missing.json()["error"]["message"]
    other_build = get(f"items={demo_items[5]}&build=12345")
    assert other_build.status_code == 404 and "build 12345" in other_build.text
    too_many = get("items=" + ",".join(f"i{n}" for n in range(21)))
    assert too_many.status_code == 400 and "over the limit of 20" in too_many.text
    too_long = get("items=" + "x" * 51)
    assert too_long.status_code == 400 and "items[0] is 51 characters" in too_long.text
    assert len(too_long.text) < 400
    assert get("colour=red").status_code == 400
    assert requests.get(f"{app.api}/recommendations?items={demo_items[5]}",
                        timeout=30).status_code == 401


def _cli(app, items: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recobatch", "lookup", items, "--api", app.api],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "RECOBATCH_FUNCTION_KEY": app.settings["DEVHOST_MASTER_KEY"]})


def test_lookup_says_the_cache_is_off_without_a_table(app_factory, demo_items):
    app = app_factory()

    answer = app.get(f"/recommendations?items={demo_items[0]}")

    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "CacheOff"
    assert "BATCH_CACHE_TABLE" in answer.json()["error"]["message"]


def test_user_to_item_rows_are_looked_up_by_user_id(app_factory):
    app = app_factory(BATCH_CACHE_TABLE="cache" + uuid.uuid4().hex[:10])
    users = ["USR-000001", "USR-000002", "odd/user#?"]
    app.upload("users.json", json.dumps({"requests": [{"UserId": u} for u in users],
                                         "job": {"apiName": "UserRecommend"}}))

    marker, manifest = app.wait_for_marker("users.json", timeout=120)

    assert marker == "_SUCCESS", manifest
    assert (manifest["cache"]["rows"], manifest["cache"]["failed"]) == (3, 0)
    results = json.loads(app.read_output("users.json/results.json"))["results"]
    for result in results:
        user = result["request"]["userId"]
        answer = app.get("/recommendations?" + urlencode({"user": user}))
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"recommendedItems": _expected(result, False)}
    assert results[0]["recommendations"]  # a known user gets a list
    assert app.get("/recommendations?items=USR-000001").status_code == 404


def test_a_rerun_fills_the_cache_from_reused_and_new_chunks(app_factory, reco, demo_items,
                                                            storage_connection_string):
    table = "cache" + uuid.uuid4().hex[:10]
    app = app_factory(BATCH_MAX_JOB_BYTES="1024", BATCH_CACHE_TABLE=table)
    reqs = _requests(demo_items, 60)
    reco.set_faults([{"target": "job", "action": "fail", "message": "boom", "count": 1}])
    app.upload("flaky.json", json.dumps({"requests": reqs}))
    marker, failed = app.wait_for_marker("flaky.json")
    assert marker == "_FAILED" and len(failed["chunks"]) >= 3, failed
    assert failed["cache"]["rows"] > 0  # the chunks that succeeded filled the cache already

    rerun = app.post(f"/batches/{failed['instanceId']}/rerun").json()["instanceId"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        marker, done = app.wait_for_marker("flaky.json")
        if done["instanceId"] == rerun:
            break
        time.sleep(0.25)

    assert marker == "_SUCCESS" and done["instanceId"] == rerun, done
    assert any(c.get("reused") for c in done["chunks"])
    assert done["cache"]["failed"] == 0
    rows = list(TableServiceClient.from_connection_string(storage_connection_string)
                .get_table_client(table).list_entities(select=["RowKey", "instanceId"]))
    assert len(rows) == len({frozenset(r["SeedItems"]) for r in reqs})
    assert {r["instanceId"] for r in rows} == {rerun}  # reused chunks' rows rewritten too
