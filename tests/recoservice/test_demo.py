"""``serve --demo``: built ``demo`` (Microsoft Store catalog) and ``synthetic`` models, created
once per state dir, whose recommendations make sense by name."""

from __future__ import annotations

import csv
import sqlite3
import time
from pathlib import Path

import pytest
import requests

from recoservice.demo import DEMO_CATALOG

NAMES = ("demo", "synthetic")


def _models(reco) -> dict[str, list[dict]]:
    models = requests.get(f"{reco.base_url}/models", headers=reco.headers(),
                          timeout=10).json()["models"]
    return {name: [m for m in models if m["name"] == name] for name in NAMES}


def _builds(reco, model_id: str) -> list[dict]:
    return requests.get(f"{reco.base_url}/models/{model_id}/builds", headers=reco.headers(),
                        timeout=10).json()["builds"]


def _catalog() -> dict[str, tuple[str, str]]:
    with DEMO_CATALOG.open(encoding="utf-8", newline="") as f:
        return {row[0]: (row[1], row[2]) for row in csv.reader(f)}


def _recommend(reco, *seeds: str, k: int = 10) -> list[str]:
    resp = requests.get(f"{reco.base_url}/models/{reco.demo_model_id}/recommend/item",
                        params={"itemIds": ",".join(seeds), "numberOfResults": k},
                        headers=reco.headers(), timeout=10)
    assert resp.status_code == 200, resp.text
    return [r["items"][0]["id"] for r in resp.json()["recommendedItems"]]


@pytest.mark.parametrize("name", NAMES)
def test_demo_models_are_built_and_active(recoservice, name):
    models = _models(recoservice)[name]
    builds = _builds(recoservice, models[0]["id"])

    assert len(models) == 1
    assert models[0]["activeBuildId"] == builds[0]["id"]
    assert builds[0]["status"] == "Succeeded"
    assert recoservice.demo_model_id == _models(recoservice)["demo"][0]["id"]
    assert recoservice.synthetic_model_id == _models(recoservice)["synthetic"][0]["id"]


def test_demo_catalog_is_the_microsoft_store_catalog(recoservice):
    expected = _catalog()
    url = f"{recoservice.base_url}/models/{recoservice.demo_model_id}/catalog"

    items, skip = [], 0
    while True:
        page = requests.get(url, params={"$top": 1000, "$skip": skip},
                            headers=recoservice.headers(), timeout=30).json()["value"]
        items += page
        skip += len(page)
        if not page:
            break

    assert {i["id"]: (i["name"], i["category"]) for i in items} == expected
    assert len(items) == 2034


def test_surface_seed_gets_mostly_surface_items(recoservice):
    catalog = _catalog()
    seed = "P3T-00003"  # Surface wWinRT-32GB (the v4 documentation's output example)

    top = _recommend(recoservice, seed)

    assert len(top) == 10 and seed not in top
    assert sum(catalog[i][1] == "Surface" for i in top) >= 6


def test_phone_cover_seed_gets_covers_of_the_same_phone(recoservice):
    catalog = _catalog()

    top = _recommend(recoservice, "C9F-00163")  # MOZO Flip Cover for Nokia Lumia 635

    assert sum("Lumia 635" in catalog[i][0] for i in top[:5]) >= 4


def test_demo_recommendations_are_reproducible(recoservice_factory, tmp_path):
    first = recoservice_factory(tmp_path / "a", demo=True)
    second = recoservice_factory(tmp_path / "b", demo=True)

    assert _recommend(first, "P3T-00003", "DAF-00500") \
        == _recommend(second, "P3T-00003", "DAF-00500")
    assert _recommend(first, "FKF-00689") == _recommend(second, "FKF-00689")


def test_demo_is_idempotent_across_restarts(recoservice_factory, tmp_path):
    first = recoservice_factory(tmp_path / "svc", demo=True)
    before = _models(first)
    builds_before = {name: _builds(first, ms[0]["id"]) for name, ms in before.items()}
    first.service.stop()

    started = time.monotonic()
    second = recoservice_factory(tmp_path / "svc", demo=True)
    restart_seconds = time.monotonic() - started

    assert _models(second) == before
    for name, models in before.items():
        builds = _builds(second, models[0]["id"])
        assert [b["id"] for b in builds] == [b["id"] for b in builds_before[name]]
        assert len(builds) == 1
    assert restart_seconds < 30


@pytest.mark.sqlite_only
def test_an_older_demo_model_is_renamed_and_a_new_one_built(recoservice_factory, tmp_path):
    first = recoservice_factory(tmp_path / "svc", demo=True)
    old_id = first.demo_model_id
    first.service.stop()
    db = next(Path(tmp_path / "svc").rglob("recoservice.db"))
    with sqlite3.connect(db) as conn:  # what an older version of --demo left behind
        conn.execute("UPDATE models SET description = 'Synthetic demo model' WHERE id = ?",
                     (old_id,))

    second = recoservice_factory(tmp_path / "svc", demo=True)

    names = {m["id"]: m["name"] for m in requests.get(
        f"{second.base_url}/models", headers=second.headers(), timeout=10).json()["models"]}
    assert second.demo_model_id != old_id
    assert names[old_id] == f"demo-outdated-{old_id[:8]}"
    assert _recommend(second, "P3T-00003")
