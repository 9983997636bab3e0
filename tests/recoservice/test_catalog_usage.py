"""Catalog and usage import statistics, bad lines, limits, listing and lookup."""

from __future__ import annotations

import requests
from reco_api_helpers import TINY_CATALOG, create_model, upload

STATS_KEYS = {"processedLineCount", "errorLineCount", "importedLineCount", "errorSummary"}


def _summary(body: dict) -> dict[str, int]:
    return {e["errorCode"]: e["errorCodeCount"] for e in body["errorSummary"]}


def test_catalog_import_counts_bad_lines_by_code(recoservice):
    model_id = create_model(recoservice)
    text = TINY_CATALOG + ("X" * 51 + ",Too long,Cat\n"   # ItemIdTooLong
                           "ONLY-TWO,Fields\n"            # MissingFields
                           "ITEM-A,Again,Cat1\n"          # DuplicateItemId
                           "ITEM-G,Golf,Cat4,desc,nofeature\n"  # BadFeatureFormat
                           "\n")                          # empty: not counted

    resp = upload(recoservice, model_id, "catalog", text)

    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == STATS_KEYS
    assert (body["processedLineCount"], body["importedLineCount"], body["errorLineCount"]) \
        == (10, 6, 4)
    assert _summary(body) == {"ItemIdTooLong": 1, "MissingFields": 1, "DuplicateItemId": 1,
                              "BadFeatureFormat": 1}


def test_usage_import_counts_bad_lines_and_answers_a_file_id(recoservice):
    model_id = create_model(recoservice)
    upload(recoservice, model_id, "catalog", TINY_CATALOG)
    text = ("u1,ITEM-A,2025-06-01T10:00:00Z,Purchase\n"
            "u1,ITEM-B,2025-06-01T10:00:00\n"            # no event type: Click
            "u2,ITEM-Z,2025-06-01T10:00:00Z,Click\n"     # UnknownItem
            "u2,ITEM-A,yesterday,Click\n"               # BadTimestamp
            "u2,ITEM-A,2025-06-01T10:00:00Z,Teleport\n"  # UnknownEventType
            "u3,ITEM-A\n")                              # MissingFields

    resp = upload(recoservice, model_id, "usage", text)

    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == STATS_KEYS | {"fileId"}
    assert body["fileId"]
    assert (body["processedLineCount"], body["importedLineCount"], body["errorLineCount"]) \
        == (6, 2, 4)
    assert _summary(body) == {"UnknownItem": 1, "BadTimestamp": 1, "UnknownEventType": 1,
                              "MissingFields": 1}


def test_empty_upload_is_400(recoservice):
    model_id = create_model(recoservice)

    resp = upload(recoservice, model_id, "catalog", "")

    assert resp.status_code == 400
    assert "empty" in resp.json()["error"]["message"]


def test_catalog_listing_pages_with_top_skip_and_next_link(recoservice):
    model_id = create_model(recoservice)
    upload(recoservice, model_id, "catalog", TINY_CATALOG)
    url = f"{recoservice.base_url}/models/{model_id}/catalog"

    first = requests.get(url, params={"$top": 4}, headers=recoservice.headers(),
                         timeout=10).json()
    second = requests.get(first["@nextLink"], headers=recoservice.headers(), timeout=10).json()

    assert [i["id"] for i in first["value"]] == ["ITEM-A", "ITEM-B", "ITEM-C", "ITEM-D"]
    assert [i["id"] for i in second["value"]] == ["ITEM-E", "ITEM-F"]
    assert "@nextLink" not in second
    assert first["value"][0] == {"id": "ITEM-A", "name": "Alpha", "category": "Cat1",
                                 "description": "First item",
                                 "features": [{"name": "color", "value": "red"}],
                                 "metadata": "color=red"}


def test_catalog_items_by_ids_and_by_search_term(recoservice):
    model_id = create_model(recoservice)
    upload(recoservice, model_id, "catalog", TINY_CATALOG)
    url = f"{recoservice.base_url}/models/{model_id}/catalog/items"

    by_ids = requests.get(url, params={"ids": "ITEM-C,ITEM-A,NOPE"},
                          headers=recoservice.headers(), timeout=10).json()
    by_term = requests.get(url, params={"searchTerm": "lph"}, headers=recoservice.headers(),
                           timeout=10).json()
    neither = requests.get(url, headers=recoservice.headers(), timeout=10)

    assert sorted(i["id"] for i in by_ids["value"]) == ["ITEM-A", "ITEM-C"]
    assert [i["name"] for i in by_term["value"]] == ["Alpha"]
    assert neither.status_code == 400
    assert "ids" in neither.json()["error"]["message"]


def test_catalog_reupload_updates_known_items(recoservice):
    model_id = create_model(recoservice)
    upload(recoservice, model_id, "catalog", TINY_CATALOG)

    upload(recoservice, model_id, "catalog", "ITEM-B,Bravo Two,Cat9\n")

    items = requests.get(f"{recoservice.base_url}/models/{model_id}/catalog",
                         headers=recoservice.headers(), timeout=10).json()["value"]
    assert len(items) == 6
    assert items[1]["name"] == "Bravo Two"


def test_upload_over_the_limit_is_413_naming_the_limit(recoservice_factory):
    reco = recoservice_factory(demo=False, extra_args=["--max-catalog-mb", "0.001"])
    model_id = create_model(reco)

    resp = upload(reco, model_id, "catalog", "ITEM-X,Name,Cat\n" * 200)

    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "PayloadTooLarge"
    assert "1,048 bytes" in resp.json()["error"]["message"]


def test_usage_files_are_listed_and_can_be_deleted(recoservice):
    model_id = create_model(recoservice)
    upload(recoservice, model_id, "catalog", TINY_CATALOG)
    file_id = upload(recoservice, model_id, "usage", "u1,ITEM-A,2025-06-01T10:00:00Z\n").json()[
        "fileId"]
    url = f"{recoservice.base_url}/models/{model_id}/usage"

    listed = requests.get(url, headers=recoservice.headers(), timeout=10).json()["value"]
    deleted = requests.delete(f"{url}/{file_id}", headers=recoservice.headers(), timeout=10)
    again = requests.delete(f"{url}/{file_id}", headers=recoservice.headers(), timeout=10)

    assert [(f["id"], f["importedLineCount"]) for f in listed] == [(file_id, 1)]
    assert deleted.status_code == 204
    assert again.status_code == 404
    assert requests.get(url, headers=recoservice.headers(), timeout=10).json() == {"value": []}
