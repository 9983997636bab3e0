"""recommend/item and recommend/user over HTTP on a hand-checkable model."""

from __future__ import annotations

import pytest
import requests
from reco_api_helpers import create_model

REC_KEYS = {"items", "rating", "reasoning"}


def _item(reco, model_url: str, **params) -> requests.Response:
    return requests.get(f"{model_url}/recommend/item", params=params, headers=reco.headers(),
                        timeout=10)


def test_one_seed_gives_jaccard_neighbours_in_order_with_v4_shape(recoservice, tiny_model):
    resp = _item(recoservice, tiny_model.url, itemIds="ITEM-A", numberOfResults=2)

    assert resp.status_code == 200
    recs = resp.json()["recommendedItems"]
    assert all(set(r) == REC_KEYS for r in recs)
    assert [r["items"][0]["id"] for r in recs] == ["ITEM-B", "ITEM-C"]
    assert [r["rating"] for r in recs] == pytest.approx([1.0, 0.2], abs=1e-5)
    assert recs[0]["items"][0] == {"id": "ITEM-B", "name": "Bravo", "metadata": ""}
    assert recs[0]["reasoning"] == ["People who like 'Alpha' also like 'Bravo'"]


def test_several_seeds_use_the_selected_items_reasoning(recoservice, tiny_model):
    recs = _item(recoservice, tiny_model.url, itemIds="ITEM-A,ITEM-D",
                 numberOfResults=2).json()["recommendedItems"]

    # B: 1.0 from A; C: 0.2 from A + 2/3 from D.
    assert [r["items"][0]["id"] for r in recs] == ["ITEM-B", "ITEM-C"]
    assert recs[1]["rating"] == pytest.approx(0.2 + 2 / 3, abs=1e-5)
    assert recs[1]["reasoning"] == ["People who like the selected items also like 'Charlie'"]


def test_backfilled_items_say_they_are_popular(recoservice, tiny_model):
    recs = _item(recoservice, tiny_model.url, itemIds="ITEM-A",
                 numberOfResults=3).json()["recommendedItems"]

    assert recs[2]["items"][0]["id"] == "ITEM-D"
    assert recs[2]["reasoning"] == ["'Delta' is popular"]


def test_unknown_seeds_are_ignored(recoservice, tiny_model):
    with_unknown = _item(recoservice, tiny_model.url, itemIds="NOPE,ITEM-A",
                         numberOfResults=2).json()
    only_unknown = _item(recoservice, tiny_model.url, itemIds="NOPE").json()

    assert [r["items"][0]["id"] for r in with_unknown["recommendedItems"]] \
        == ["ITEM-B", "ITEM-C"]
    assert with_unknown["recommendedItems"][0]["reasoning"] \
        == ["People who like 'Alpha' also like 'Bravo'"]
    assert only_unknown == {"recommendedItems": []}


def test_include_metadata_returns_catalog_features(recoservice, tiny_model):
    recs = _item(recoservice, tiny_model.url, itemIds="ITEM-B", numberOfResults=1,
                 includeMetadata="true").json()["recommendedItems"]

    assert recs[0]["items"][0] == {"id": "ITEM-A", "name": "Alpha", "metadata": "color=red"}


def test_minimal_score_drops_weak_items(recoservice, tiny_model_factory):
    model = tiny_model_factory(sar={"supportThreshold": 1, "enableBackfilling": False})

    recs = _item(recoservice, model.url, itemIds="ITEM-A", numberOfResults=5,
                 minimalScore=0.5).json()["recommendedItems"]

    assert [r["items"][0]["id"] for r in recs] == ["ITEM-B"]


def test_build_id_parameter_selects_a_build(recoservice, tiny_model):
    ok = _item(recoservice, tiny_model.url, itemIds="ITEM-A", buildId=tiny_model.build_id)
    missing = _item(recoservice, tiny_model.url, itemIds="ITEM-A", buildId=5)

    assert ok.status_code == 200
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "BuildNotFound"


def test_item_ids_over_1024_characters_is_400(recoservice, tiny_model):
    resp = _item(recoservice, tiny_model.url, itemIds=",".join(["ITEM-A"] * 200))

    assert resp.status_code == 400
    assert "itemIds" in resp.json()["error"]["message"]


def test_model_without_active_build_is_409(recoservice):
    model_id = create_model(recoservice)

    resp = _item(recoservice, f"{recoservice.base_url}/models/{model_id}", itemIds="ITEM-A")

    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "NoActiveBuild"
    assert "no active build" in resp.json()["error"]["message"]


def test_user_recommendations_exclude_seen_items(recoservice, tiny_model):
    resp = requests.get(f"{tiny_model.url}/recommend/user",
                        params={"userId": "u4", "numberOfResults": 2},
                        headers=recoservice.headers(), timeout=10)

    assert resp.status_code == 200
    recs = resp.json()["recommendedItems"]
    ids = [r["items"][0]["id"] for r in recs]
    assert ids == ["ITEM-A", "ITEM-B"]   # u4 used C and D; A and B are C's neighbours
    assert recs[0]["reasoning"] == ["People who like the items you used also like 'Alpha'"]


def test_unknown_user_falls_back_to_item_ids_or_nothing(recoservice, tiny_model):
    url = f"{tiny_model.url}/recommend/user"

    fallback = requests.get(url, params={"userId": "nobody", "itemIds": "ITEM-A",
                                         "numberOfResults": 1},
                            headers=recoservice.headers(), timeout=10).json()
    nothing = requests.get(url, params={"userId": "nobody"}, headers=recoservice.headers(),
                           timeout=10).json()

    assert [r["items"][0]["id"] for r in fallback["recommendedItems"]] == ["ITEM-B"]
    assert nothing == {"recommendedItems": []}


def test_user_route_needs_user_id(recoservice, tiny_model):
    resp = requests.get(f"{tiny_model.url}/recommend/user", headers=recoservice.headers(),
                        timeout=10)

    assert resp.status_code == 400
    assert "userId" in resp.json()["error"]["message"]


def test_synthetic_model_recommends_synthetic_items(recoservice):
    url = f"{recoservice.base_url}/models/{recoservice.synthetic_model_id}"

    recs = _item(recoservice, url, itemIds="SYN-000010",
                 numberOfResults=10).json()["recommendedItems"]

    assert len(recs) == 10
    assert all(r["items"][0]["id"].startswith("SYN-") for r in recs)
    assert "SYN-000010" not in [r["items"][0]["id"] for r in recs]
    ratings = [r["rating"] for r in recs]
    assert ratings == sorted(ratings, reverse=True)


@pytest.mark.parametrize(("name", "value"), [
    ("itemIds", ""), ("numberOfResults", "1.5"), ("minimalScore", "abc"),
    ("minimalScore", "nan"), ("includeMetadata", "maybe"), ("buildId", "x"),
])
def test_bad_item_query_parameter_is_400_naming_it(recoservice, tiny_model, name, value):
    params = {"itemIds": "ITEM-A", name: value}

    resp = _item(recoservice, tiny_model.url, **params)

    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "BadArgument"
    assert name in resp.json()["error"]["message"]


@pytest.mark.parametrize("value", ["true", "True", "1", "yes"])
def test_include_metadata_accepts_the_usual_spellings_of_true(recoservice, tiny_model, value):
    recs = _item(recoservice, tiny_model.url, itemIds="ITEM-B", numberOfResults=1,
                 includeMetadata=value).json()["recommendedItems"]

    assert recs[0]["items"][0]["id"] == "ITEM-A"
    assert recs[0]["items"][0]["metadata"] == "color=red"


def test_item_route_is_documented_with_its_query_parameters(recoservice):
    root = recoservice.base_url.split("/recommendations")[0]
    spec = requests.get(f"{root}/openapi.json", timeout=10).json()

    operation = spec["paths"]["/recommendations/v4.0/models/{model_id}/recommend/item"]["get"]
    names = {p["name"] for p in operation["parameters"]}

    assert {"itemIds", "numberOfResults", "minimalScore", "includeMetadata", "buildId"} <= names
