"""The recommendations cache library against real Azurite tables: keys, rows, fill, lookup."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest
from azure.data.tables import TableServiceClient
from hypothesis import given, settings
from hypothesis import strategies as st

from recobatch import cache
from recobatch.errors import ConfigurationError, InputError
from recobatch.settings import load_settings

# Characters Azure Table keys refuse: / \ # ? and the control characters.
REFUSED = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
ids = st.text(min_size=1, max_size=50)


@pytest.fixture
def table(storage_connection_string: str):
    service = TableServiceClient.from_connection_string(storage_connection_string)
    name = "t" + uuid.uuid4().hex[:12]
    client = service.create_table(name)
    yield client
    service.delete_table(name)


def _result(k: int, id_chars: int = 8, names: bool = False) -> dict:
    recs = []
    for rank in range(k):
        item = {"itemId": f"{rank:0{id_chars}d}"[-id_chars:]}
        if names:
            item.update(name=f"name of {rank}", metadata="")
        recs.append({"items": [item], "rating": round(1 - rank / 1000, 6)})
    return {"request": {"seedItems": ["S"]}, "recommendations": recs}


@given(st.lists(ids, min_size=1, max_size=30))
@settings(max_examples=200, deadline=None)
def test_item_keys_are_table_safe_bounded_and_ignore_seed_order(seeds):
    key = cache.item_key(seeds)

    assert not REFUSED.search(key)
    assert len(key.encode("utf-16-le", "surrogatepass")) <= 1024
    assert cache.item_key(list(reversed(seeds)) + seeds[:1]) == key


@given(st.lists(ids, min_size=1, max_size=5), st.lists(ids, min_size=1, max_size=5))
@settings(max_examples=300, deadline=None)
def test_different_seed_sets_never_share_a_key(first, second):
    if set(first) != set(second):
        assert cache.item_key(first) != cache.item_key(second)


@pytest.mark.parametrize(("a", "b"), [
    (["A.B"], ["A", "B"]), (["A~2EB"], ["A.B"]), (["A,B"], ["A", "B"]),
    (["x" * 600], ["x" * 601]), (["x" * 600 + "a"], ["x" * 600 + "b"])])
def test_lookalike_and_long_keys_do_not_collide(a, b):
    assert cache.item_key(a) != cache.item_key(b)


def test_user_and_item_keys_of_the_same_text_differ():
    assert cache.user_key("A") != cache.item_key(["A"])
    assert cache.request_key({"UserId": "A"}, "UserRecommend") == cache.user_key("A")
    assert cache.request_key({"SeedItems": ["B", "A"]}, "ItemRecommend") == \
        cache.item_key(["A", "B"])


def test_partition_names_the_active_build_when_the_job_has_none():
    assert cache.partition_key("m-1", None) == "m-1.active"
    assert cache.partition_key("m-1", 7) == "m-1.7"


def test_lookup_key_validates_and_names_the_parameter():
    with pytest.raises(InputError, match="over the limit of 20"):
        cache.lookup_key([f"i{n}" for n in range(21)], None)
    with pytest.raises(InputError, match=r"items\[1\] is 51 characters"):
        cache.lookup_key(["ok", "x" * 51], None)
    with pytest.raises(InputError, match="give items"):
        cache.lookup_key([], None)
    assert cache.lookup_key(["B", "A"], None) == cache.item_key(["A", "B"])


def test_cache_table_setting_is_validated(use_app_env, storage_connection_string, recoservice):
    env = {"AzureWebJobsStorage": storage_connection_string, "TASKHUB_NAME": "h",
           "RECO_ENDPOINT": recoservice.base_url, "RECO_SUBSCRIPTION_KEY": "k",
           "RECO_MODEL_ID": "m"}
    assert load_settings(env).cache_table is None
    assert load_settings({**env, "BATCH_CACHE_TABLE": "recocache"}).cache_table == "recocache"
    with pytest.raises(ConfigurationError, match="BATCH_CACHE_TABLE must be a table name"):
        load_settings({**env, "BATCH_CACHE_TABLE": "no-dashes"})


@pytest.mark.parametrize("metadata", [False, True])
def test_rows_of_k_100_with_worst_case_ids_fit_and_round_trip(table, metadata):
    # 100 recommendations of 50-character ids that JSON escapes six characters each, and
    # 1,000-character names: properties split, the entity stays under 1 MiB.
    odd = "\x01" * 25 + "é/#?" * 6 + "\U0001f600"
    recs = [{"items": [{"itemId": f"{odd}{n:03d}"[-50:], "name": "n" * 999 + str(n % 10),
                        "metadata": ""}], "rating": n / 100} for n in range(100)]
    result = {"request": {"seedItems": ["S"]}, "recommendations": recs}

    report = cache.fill(table, [{"SeedItems": ["S"]}], [result], partition="p.active",
                        api_name="ItemRecommend", instance_id="rb-1", metadata=metadata)
    found = cache.lookup(table, "p.active", cache.item_key(["S"]))

    assert report.as_dict() == {"rows": 1, "failed": 0}
    assert found is not None and found["instanceId"] == "rb-1" and found["count"] == 100
    items = cache.answer(found)["recommendedItems"]
    assert [i["items"][0]["id"] for i in items] == [r["items"][0]["itemId"] for r in recs]
    assert [i["rating"] for i in items] == [r["rating"] for r in recs]
    if metadata:
        assert [i["items"][0]["name"] for i in items] == [r["items"][0]["name"] for r in recs]
        assert "names_1" in found  # the names did not fit one property
    else:
        assert "name" not in items[0]["items"][0]


def test_fill_writes_one_row_per_distinct_key_in_transactions(table):
    requests = [{"SeedItems": [f"s{n}", "x/y#z?"]} for n in range(250)]
    requests += [{"SeedItems": ["x/y#z?", "s0"]}]  # the same key as the first, seeds swapped
    results = [_result(10) for _ in requests]

    report = cache.fill(table, requests, results, partition="p.1", api_name="ItemRecommend",
                        instance_id="rb-2", metadata=False,
                        written_at=datetime(2026, 1, 1, tzinfo=UTC))

    rows = list(table.query_entities("PartitionKey eq 'p.1'"))
    assert len(rows) == 250
    assert (report.rows, report.failed) == (250, 0)
    row = cache.lookup(table, "p.1", cache.item_key(["s7", "x/y#z?"]))
    assert row is not None and cache.answer(row)["recommendedItems"][0] == \
        {"items": [{"id": "00000000"}], "rating": 1.0}


def test_an_oversized_row_is_counted_failed_and_its_neighbours_written(table):
    huge = {"recommendations": [{"items": [{"itemId": "i" * 50, "name": "n" * 30_000}],
                                 "rating": 0.5}] * 40}

    report = cache.fill(table, [{"SeedItems": ["big"]}, {"SeedItems": ["small"]}],
                        [huge, _result(3)], partition="p", api_name="ItemRecommend",
                        instance_id="rb-3", metadata=True)

    assert (report.rows, report.failed) == (1, 1)
    assert "entity limit" in report.message
    assert cache.lookup(table, "p", cache.item_key(["big"])) is None
    assert cache.lookup(table, "p", cache.item_key(["small"])) is not None


def test_an_unreachable_table_counts_rows_failed_without_raising():
    from socket import socket

    with socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    service = TableServiceClient.from_connection_string(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        f"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;",
        retry_total=0, connection_timeout=2)
    table = service.get_table_client("nowhere")

    report = cache.fill(table, [{"SeedItems": ["a"]}, {"SeedItems": ["b"]}],
                        [_result(2), _result(2)], partition="p", api_name="ItemRecommend",
                        instance_id="rb-4", metadata=False)

    assert (report.rows, report.failed) == (0, 2)
    assert report.message.startswith("a cache write failed")
    assert "AccountKey" not in report.message and "Eby8" not in report.message
