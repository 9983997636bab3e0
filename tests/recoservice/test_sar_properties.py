"""SAR properties on random usage: ranking invariants and agreement with a dense brute force."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recoservice.sar import SarModel, SarParams


@st.composite
def usage_and_seeds(draw: st.DrawFn):
    n_users = draw(st.integers(1, 12))
    n_items = draw(st.integers(1, 10))
    n_events = draw(st.integers(0, 60))
    users = np.array(draw(st.lists(st.integers(0, n_users - 1), min_size=n_events,
                                   max_size=n_events)), dtype=np.int64)
    items = np.array(draw(st.lists(st.integers(0, n_items - 1), min_size=n_events,
                                   max_size=n_events)), dtype=np.int64)
    seeds = draw(st.lists(st.lists(st.integers(0, n_items - 1), max_size=4), min_size=1,
                          max_size=8))
    params = SarParams(
        support_threshold=draw(st.integers(1, 3)),
        similarity=draw(st.sampled_from(["cooccurrence", "lift", "jaccard"])),
        enable_backfilling=draw(st.booleans()),
        allow_seed_items=draw(st.booleans()),
    )
    k = draw(st.integers(1, 6))
    minimal_score = draw(st.sampled_from([0.0, 0.2, 1.0]))
    return users, items, n_users, n_items, seeds, params, k, minimal_score


def dense_scores(users, items, n_users, n_items, params: SarParams, seeds: list[int]):
    """The reference math, written the slow obvious way."""
    a = np.zeros((n_users, n_items))
    a[users, items] = 1
    c = a.T @ a
    d = np.diag(c).copy()
    c[c < params.support_threshold] = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        if params.similarity == "jaccard":
            s = c / (d[:, None] + d[None, :] - c)
        elif params.similarity == "lift":
            s = c / (d[:, None] * d[None, :])
        else:
            s = c
    s = np.nan_to_num(s)
    x = s[sorted(set(seeds))].sum(axis=0).astype(np.float32) if seeds else np.zeros(n_items)
    if not params.allow_seed_items:
        x[list(seeds)] = 0
    return x


@settings(max_examples=150, deadline=None)
@given(usage_and_seeds())
def test_results_match_brute_force_and_keep_the_invariants(case) -> None:
    users, items, n_users, n_items, seeds, params, k, minimal_score = case
    model = SarModel.fit(users, items, np.zeros(len(users)), np.ones(len(users)), n_users,
                         n_items, params)
    indptr = np.concatenate(([0], np.cumsum([len(s) for s in seeds])))
    indices = np.array([i for s in seeds for i in s], dtype=np.int64)

    idx, score, backfilled = model.recommend_items(indptr, indices, k, minimal_score,
                                                   return_backfill=True)

    assert idx.shape == score.shape == backfilled.shape == (len(seeds), k)
    for row, seed in enumerate(seeds):
        listed = idx[row][idx[row] >= 0]
        scored = idx[row][(idx[row] >= 0) & ~backfilled[row]]
        # padding only at the end, no duplicates, backfill only after the scored results
        assert (idx[row][len(listed):] == -1).all()
        assert len(set(listed.tolist())) == len(listed) <= k
        assert not backfilled[row][: len(scored)].any()
        assert (np.diff(score[row][: len(scored)]) <= 0).all()
        if not params.allow_seed_items:
            assert not set(listed.tolist()) & set(seed)
        if not params.enable_backfilling:
            assert not backfilled[row].any()
        # the scored part is exactly the brute-force top k (score desc, lower index on ties)
        x = dense_scores(users, items, n_users, n_items, params, seed)
        order = np.lexsort((np.arange(n_items), -x))
        want = [j for j in order if x[j] > 0 and x[j] >= minimal_score][:k]
        assert scored.tolist() == want
        np.testing.assert_allclose(score[row][: len(want)], x[want], rtol=1e-5)
