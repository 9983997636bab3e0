"""The batch output encoder writes exactly what json.dumps of the v4 result dicts would."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recoservice.batch_output import encode_results
from recoservice.scoring import NONE_KNOWN, SEVERAL, USER, LoadedBuild, RawScores, _recs

NAMES = ['Plain', 'Quote " inside', "Back\\slash", "Ünïcødé ✓", "Tab\tand\nnewline",
         "Ctrl \x01", "Apostrophe's", "Line sep \u2028"]


def _build(names: list[str], metadata: list[str]) -> LoadedBuild:
    ids = [f"ID-{i}\"{i}" if i % 3 == 0 else f"ID-{i}" for i in range(len(names))]
    return LoadedBuild(model=None, item_ids=ids, item_index={}, user_index={}, names=names,
                       metadata=metadata)


def _reference(raw: RawScores, rows: list[int], echoes: list[Any], meta: bool) -> list[str]:
    """The result dicts through json.dumps: the format the encoder must match byte for byte."""
    out = []
    for row, echo in zip(rows, echoes, strict=True):
        why = raw.reason[row] if row >= 0 else NONE_KNOWN
        recs: list[dict[str, Any]] = []
        if why != NONE_KNOWN:
            because = ("People who like the selected items also like" if why == SEVERAL else
                       "People who like the items you used also like" if why == USER else
                       f"People who like '{raw.built.names[why]}' also like")
            recs = [{"items": [{"itemId": r["itemId"], "name": r["name"],
                                "metadata": r["metadata"] or ""}],
                     "rating": r["rating"], "reasoning": r["reasoning"]}
                    for r in _recs(raw.built, raw.idx[row], raw.score[row], raw.fill[row],
                                   because, meta)]
        out.append(json.dumps({"request": echo, "recommendations": recs}, ensure_ascii=False))
    return out


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_encoded_results_equal_json_dumps_of_the_result_dicts(data):
    n = len(NAMES)
    built = _build(NAMES, data.draw(st.lists(st.sampled_from(["", "k=v", 'q="x"']),
                                             min_size=n, max_size=n)))
    k = data.draw(st.integers(1, 5))
    n_req = data.draw(st.integers(0, 6))
    entry = st.tuples(st.integers(0, n - 1), st.floats(0, 1, allow_nan=False, width=32),
                      st.booleans())
    idx, score, fill, reason = [], [], [], []
    for _ in range(n_req):
        row = data.draw(st.lists(entry, min_size=k, max_size=k))
        cut = data.draw(st.integers(0, k))  # padding only at the end
        idx.append([e[0] if i < cut else -1 for i, e in enumerate(row)])
        score.append([round(e[1], 6) for e in row])
        fill.append([e[2] for e in row])
        reason.append(data.draw(st.sampled_from([NONE_KNOWN, SEVERAL, USER, 0, 1, 2, 5])))
    raw = RawScores(built, reason, idx, score, fill)
    rows = data.draw(st.lists(st.integers(-1, n_req - 1), max_size=8)) if n_req else []
    echoes = [data.draw(st.sampled_from([
        {"seedItems": ["ID-1", "ID-2"]}, {"seedItems": ['we"ird', "ü"]}, {"seedItems": []},
        {"seedItems": [1, None]}, {"userId": "U-1"}, {"userId": None}]))
        for _ in rows]
    meta = data.draw(st.booleans())

    assert encode_results(raw, rows, echoes, meta) == _reference(raw, rows, echoes, meta)


def test_no_scored_request_gives_empty_recommendations():
    assert encode_results(None, [-1, -1], [{"seedItems": []}, {"userId": "x"}], False) == [
        '{"request": {"seedItems": []}, "recommendations": []}',
        '{"request": {"userId": "x"}, "recommendations": []}']


@pytest.mark.parametrize("meta", [False, True])
def test_item_pieces_are_built_once_per_build_and_flag(meta):
    built = _build(NAMES, ["m"] * len(NAMES))
    raw = RawScores(built, [0], [[1, 2]], [[0.5, 0.25]], [[False, True]])

    encode_results(raw, [0], [{"seedItems": ["a"]}], meta)
    pieces = dict(built.encoded)
    encode_results(raw, [0], [{"seedItems": ["a"]}], meta)

    assert built.encoded == pieces and len(pieces) == 1
