"""``GET /api/recommendations``'s query against hostile input, in-process (no run needed):
every refusal is a 400 naming the parameter, bounded, and never echoes a long value whole."""

from __future__ import annotations

from types import SimpleNamespace

import azure.functions as func
import pytest

from recobatch import cache
from triggers.http_common import HttpError
from triggers.http_recommendations import MAX_QUERY_CHARS, request_of

SETTINGS = SimpleNamespace(reco_model_id="model-1", reco_build_id=None)


def _lookup(query: str) -> tuple[str, str, str]:
    req = func.HttpRequest(method="GET", url=f"http://127.0.0.1/api/recommendations?{query}",
                           body=b"", headers={})
    return request_of(req, SETTINGS)  # type: ignore[arg-type]


def _refused(query: str) -> str:
    with pytest.raises(HttpError) as caught:
        _lookup(query)
    assert caught.value.status == 400
    text = caught.value.message
    assert len(text) < 400
    return text


def test_hostile_queries_are_refused_naming_the_parameter():
    assert "characters, over the" in _refused("items=" + "A" * MAX_QUERY_CHARS)
    assert "build must be an integer" in _refused("items=A&build=../../x")
    assert "build must be an integer" in _refused("items=A&build=%EF%BC%91")  # fullwidth 1
    assert "model must be 1 to 100" in _refused("items=A&model=" + "m" * 101)
    assert "give items once" in _refused("items=A&items=B")
    unknown = _refused("items=A&" + "k" * 500 + "=1")
    assert "k" * 41 not in unknown  # the unknown name is clipped
    assert "items[1] is empty" in _refused("items=A,,B")
    assert "user must be 1 to 50" in _refused("user=" + "u" * 51)


def test_odd_characters_are_keys_not_syntax():
    # Table key syntax (/ \\ # ?), control characters and quotes become escaped key text
    partition, row, what = _lookup("items=%2F%5C%23%3F%0A%22&build=active")
    assert partition == cache.partition_key("model-1", None)
    assert row == cache.item_key(['/\\#?\n"'])
    assert all(ch.isalnum() or ch in "-_.~" for ch in row)
    assert "\n" not in what  # the 404 sentence quotes it escaped
