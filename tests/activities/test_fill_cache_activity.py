"""Activity ``fill_cache`` on real Azurite: a chunk's input and output in the work folder."""

from __future__ import annotations

import json
import uuid

import pytest
from azure.data.tables import TableServiceClient

from activities.fill_cache import run as fill_cache
from recobatch import cache, naming
from recobatch.errors import InputError, StorageError

INSTANCE = "rb-" + "c" * 32


def _chunk(containers, requests: list, results: list, work_id: str = INSTANCE) -> None:
    work = containers["work"]
    if not work.exists():
        work.create_container()
    work.upload_blob(naming.chunk_input_blob(work_id, 1),
                     json.dumps({"requests": requests}), overwrite=True)
    work.upload_blob(naming.chunk_output_blob(work_id, 1),
                     json.dumps({"results": results}), overwrite=True)


def _payload(table: str, **extra) -> dict:
    return {"instanceId": INSTANCE, "chunk": "chunk-00001", "table": table,
            "partition": "m.active", "apiName": "ItemRecommend", **extra}


def _result(seeds: list[str], items: list[str]) -> dict:
    return {"request": {"seedItems": seeds},
            "recommendations": [{"items": [{"itemId": i, "name": f"N {i}", "metadata": ""}],
                                 "rating": 0.5} for i in items]}


def test_fill_cache_writes_the_chunks_rows_from_the_work_folder(containers,
                                                                storage_connection_string):
    table = "t" + uuid.uuid4().hex[:12]
    earlier = "rb-" + "e" * 32
    _chunk(containers, [{"SeedItems": ["B", "A"]}, {"SeedItems": ["C"]}],
           [_result(["B", "A"], ["X", "Y"]), _result(["C"], [])], work_id=earlier)

    answer = fill_cache(_payload(table, includeMetadata=True, workId=earlier))

    assert answer == {"rows": 2, "failed": 0}
    client = TableServiceClient.from_connection_string(storage_connection_string) \
        .get_table_client(table)
    row = cache.lookup(client, "m.active", cache.item_key(["A", "B"]))
    assert row is not None and row["instanceId"] == INSTANCE
    assert cache.answer(row) == {"recommendedItems": [
        {"items": [{"id": "X", "name": "N X"}], "rating": 0.5},
        {"items": [{"id": "Y", "name": "N Y"}], "rating": 0.5}]}
    assert cache.answer(cache.lookup(client, "m.active", cache.item_key(["C"]))) == \
        {"recommendedItems": []}


def test_fill_cache_raises_when_the_chunk_output_is_gone(containers):
    containers["work"].create_container()
    containers["work"].upload_blob(naming.chunk_input_blob(INSTANCE, 1),
                                   json.dumps({"requests": [{"SeedItems": ["A"]}]}))

    with pytest.raises(StorageError, match="chunk-00001: the job's output blob is missing"):
        fill_cache(_payload("t" + uuid.uuid4().hex[:12]))


@pytest.mark.parametrize(("field", "value"), [("table", "bad-name"), ("apiName", "Nope"),
                                               ("partition", "")])
def test_fill_cache_names_a_bad_payload_field(app_env, field, value):
    with pytest.raises(InputError, match=f"fill_cache: the payload field {field}"):
        fill_cache({**_payload("recocache"), field: value})
