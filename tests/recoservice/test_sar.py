"""SAR engine: hand-computed co-occurrence, similarities and rankings on a tiny dataset.

The dataset (6 users, 5 items), one event per cell::

          i0 i1 i2 i3 i4
    u0     1  1  1  .  .
    u1     1  1  .  .  .
    u2     1  1  .  1  .
    u3     .  1  1  .  .
    u4     1  .  1  1  .
    u5     .  .  .  .  1

Co-occurrence C = AᵀA (worked out by hand in ``COOC``): occurrence counts 4, 4, 3, 2, 1 on the
diagonal; i4 co-occurs with nothing.
"""

from __future__ import annotations

from fractions import Fraction as F
from pathlib import Path

import numpy as np
import pytest

from recoservice.sar import EVENT_WEIGHTS, SarModel, SarParams

DAY = 86_400.0
NOW = 1_700_000_000.0

EVENTS = [  # (user, item)
    (0, 0), (0, 1), (0, 2),
    (1, 0), (1, 1),
    (2, 0), (2, 1), (2, 3),
    (3, 1), (3, 2),
    (4, 0), (4, 2), (4, 3),
    (5, 4),
]

COOC = np.array([
    [4, 3, 2, 2, 0],
    [3, 4, 2, 1, 0],
    [2, 2, 3, 1, 0],
    [2, 1, 1, 2, 0],
    [0, 0, 0, 0, 1],
], dtype=float)

# jaccard c_ij / (c_ii + c_jj - c_ij), computed by hand; diagonal 1.
JACCARD = np.array([
    [1, F(3, 5), F(2, 5), F(1, 2), 0],
    [F(3, 5), 1, F(2, 5), F(1, 5), 0],
    [F(2, 5), F(2, 5), 1, F(1, 4), 0],
    [F(1, 2), F(1, 5), F(1, 4), 1, 0],
    [0, 0, 0, 0, 1],
], dtype=float)

# lift c_ij / (c_ii * c_jj); diagonal 1 / c_ii.
LIFT = np.array([
    [F(1, 4), F(3, 16), F(1, 6), F(1, 4), 0],
    [F(3, 16), F(1, 4), F(1, 6), F(1, 8), 0],
    [F(1, 6), F(1, 6), F(1, 3), F(1, 6), 0],
    [F(1, 4), F(1, 8), F(1, 6), F(1, 2), 0],
    [0, 0, 0, 0, 1],
], dtype=float)


def fit(params: SarParams, events=EVENTS, times=None, weights=None, now=None) -> SarModel:
    users = np.array([u for u, _ in events])
    items = np.array([i for _, i in events])
    times = np.full(len(events), NOW) if times is None else np.asarray(times, dtype=float)
    weights = np.ones(len(events)) if weights is None else np.asarray(weights, dtype=float)
    return SarModel.fit(users, items, times, weights, int(users.max()) + 1, 5, params, now=now)


def seeds_csr(requests: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    indptr = np.concatenate(([0], np.cumsum([len(r) for r in requests])))
    indices = np.array([i for r in requests for i in r], dtype=np.int64)
    return indptr, indices


def recommend(model: SarModel, requests: list[list[int]], k: int, **kwargs):
    indptr, indices = seeds_csr(requests)
    return model.recommend_items(indptr, indices, k, **kwargs)


# ---------------------------------------------------------------- similarity matrices
def test_cooccurrence_matrix_matches_hand_count() -> None:
    model = fit(SarParams(similarity="cooccurrence", support_threshold=1))

    np.testing.assert_array_equal(model.similarity().toarray(), COOC)
    np.testing.assert_array_equal(model.popularity, [4, 4, 3, 2, 1])


def test_jaccard_matrix_matches_hand_computation() -> None:
    model = fit(SarParams(similarity="jaccard", support_threshold=1))

    np.testing.assert_allclose(model.similarity().toarray(), JACCARD, rtol=1e-6)


def test_lift_matrix_matches_hand_computation() -> None:
    model = fit(SarParams(similarity="lift", support_threshold=1))

    np.testing.assert_allclose(model.similarity().toarray(), LIFT, rtol=1e-6)


def test_support_threshold_zeroes_rare_pairs_and_rare_diagonal() -> None:
    model = fit(SarParams(similarity="cooccurrence", support_threshold=2))

    expected = COOC.copy()
    expected[expected < 2] = 0  # c13, c23 and the diagonal of i4 fall below the threshold
    np.testing.assert_array_equal(model.similarity().toarray(), expected)
    # popularity keeps the raw occurrence counts
    np.testing.assert_array_equal(model.popularity, [4, 4, 3, 2, 1])


def test_timestamp_unit_counts_cooccurrence_per_basket() -> None:
    # u0 buys i0+i1 together at t=100 and i2 later; u1 buys all three at once.
    events = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    times = [100, 100, 200, 100, 100, 100]
    by_user = fit(SarParams(similarity="cooccurrence", support_threshold=1), events, times)
    by_basket = fit(
        SarParams(similarity="cooccurrence", support_threshold=1, cooccurrence_unit="Timestamp"),
        events, times,
    )

    assert by_user.similarity().toarray()[:3, :3].tolist() == [[2, 2, 2], [2, 2, 2], [2, 2, 2]]
    assert by_basket.similarity().toarray()[:3, :3].tolist() == [[2, 2, 1], [2, 2, 1], [1, 1, 2]]


# ---------------------------------------------------------------- item-to-item
def test_single_seed_ranks_by_jaccard_and_excludes_the_seed() -> None:
    model = fit(SarParams(support_threshold=1))

    idx, score = recommend(model, [[0]], 3)

    assert idx.tolist() == [[1, 3, 2]]
    np.testing.assert_allclose(score, [[0.6, 0.5, 0.4]], rtol=1e-6)


def test_allow_seed_items_keeps_the_seed_with_its_self_similarity() -> None:
    model = fit(SarParams(support_threshold=1, allow_seed_items=True))

    idx, score = recommend(model, [[0]], 2)

    assert idx.tolist() == [[0, 1]]
    np.testing.assert_allclose(score, [[1.0, 0.6]], rtol=1e-6)


def test_several_seeds_sum_their_similarities() -> None:
    model = fit(SarParams(support_threshold=1))

    idx, score = recommend(model, [[0, 1]], 2)

    # i2: 2/5 + 2/5, i3: 1/2 + 1/5
    assert idx.tolist() == [[2, 3]]
    np.testing.assert_allclose(score, [[0.8, 0.7]], rtol=1e-6)


def test_ties_go_to_the_lower_item_index() -> None:
    model = fit(SarParams(similarity="cooccurrence", support_threshold=1))

    idx, score = recommend(model, [[2]], 2)  # c20 = c21 = 2

    assert idx.tolist() == [[0, 1]]
    assert score.tolist() == [[2.0, 2.0]]


def test_minimal_score_drops_results_then_backfill_fills_with_popular_items() -> None:
    model = fit(SarParams(support_threshold=1))

    idx, score, backfilled = recommend(model, [[0]], 3, minimal_score=0.45, return_backfill=True)

    # i2 (0.4) falls below 0.45; the most popular item not seed and not listed is i2 again.
    assert idx.tolist() == [[1, 3, 2]]
    np.testing.assert_allclose(score, [[0.6, 0.5, 0.0]], rtol=1e-6)
    assert backfilled.tolist() == [[False, False, True]]


def test_without_backfilling_short_rows_are_padded() -> None:
    model = fit(SarParams(support_threshold=1, enable_backfilling=False))

    idx, score = recommend(model, [[0], [4]], 3, minimal_score=0.45)

    assert idx.tolist() == [[1, 3, -1], [-1, -1, -1]]
    assert score[:, 2].tolist() == [0.0, 0.0]


def test_seed_without_neighbours_gets_popular_items_in_popularity_order() -> None:
    model = fit(SarParams(support_threshold=1))

    idx, _, backfilled = recommend(model, [[4], []], 3, return_backfill=True)

    # popularity 4, 4, 3, 2, 1: i0 and i1 tie, lower index first
    assert idx.tolist() == [[0, 1, 2], [0, 1, 2]]
    assert backfilled.all()


def test_duplicate_seeds_count_once() -> None:
    model = fit(SarParams(support_threshold=1))

    idx, score = recommend(model, [[0, 0]], 1)

    assert idx.tolist() == [[1]]
    np.testing.assert_allclose(score, [[0.6]], rtol=1e-6)


def test_max_neighbors_keeps_single_seed_top_k_identical() -> None:
    full = fit(SarParams(support_threshold=1))
    pruned = fit(SarParams(support_threshold=1, max_neighbors=2))

    requests = [[0], [1], [2], [3]]
    assert recommend(pruned, requests, 2)[0].tolist() == recommend(full, requests, 2)[0].tolist()
    assert pruned.similarity().nnz < full.similarity().nnz


# ---------------------------------------------------------------- affinity and users
def test_affinity_decays_with_half_life_and_sums_event_weights() -> None:
    events = [(0, 0), (0, 1), (0, 1), (0, 2)]
    times = [NOW, NOW - 30 * DAY, NOW - 60 * DAY, NOW - 15 * DAY]
    weights = [EVENT_WEIGHTS["Click"], EVENT_WEIGHTS["Purchase"], EVENT_WEIGHTS["Click"],
               EVENT_WEIGHTS["RemoveShopCart"]]

    model = fit(SarParams(half_life_days=30), events, times, weights)

    affinity = model.affinity.toarray()[0]
    # i0: 1 now; i1: 4·½ + 1·¼; i2: −1·2^(−½)
    np.testing.assert_allclose(affinity[:3], [1.0, 2.25, -(2 ** -0.5)], rtol=1e-12)


def test_now_defaults_to_the_latest_event() -> None:
    model = fit(SarParams(half_life_days=10), [(0, 0), (0, 1)], [NOW - 10 * DAY, NOW - 20 * DAY])

    assert model.now == NOW - 10 * DAY
    np.testing.assert_allclose(model.affinity.toarray()[0, :2], [1.0, 0.5])


def test_user_recommendations_are_affinity_times_similarity_without_seen_items() -> None:
    model = fit(SarParams(support_threshold=1))

    idx, score = model.recommend_users(np.array([3]), 2)

    # u3 has i1, i2 (affinity 1 each): i0 = 3/5 + 2/5, i3 = 1/5 + 1/4
    assert idx.tolist() == [[0, 3]]
    np.testing.assert_allclose(score, [[1.0, 0.45]], rtol=1e-6)


def test_user_recommendations_can_include_seen_items() -> None:
    model = fit(SarParams(support_threshold=1))

    idx, score = model.recommend_users(np.array([3]), 2, exclude_seen=False)

    # i1 = 1 + 2/5, i2 = 2/5 + 1
    assert idx.tolist() == [[1, 2]]
    np.testing.assert_allclose(score, [[1.4, 1.4]], rtol=1e-6)


def test_unknown_user_gets_popular_items_or_nothing() -> None:
    with_fill = fit(SarParams(support_threshold=1))
    without = fit(SarParams(support_threshold=1, enable_backfilling=False))

    assert with_fill.recommend_users(np.array([-1]), 2)[0].tolist() == [[0, 1]]
    assert without.recommend_users(np.array([-1]), 2)[0].tolist() == [[-1, -1]]


def test_user_recommendations_need_enable_u2i() -> None:
    model = fit(SarParams(enable_u2i=False))

    assert model.affinity is None
    with pytest.raises(ValueError, match="enable_u2i"):
        model.recommend_users(np.array([0]), 2)


def test_invalid_params_are_rejected_with_the_field_name() -> None:
    with pytest.raises(ValueError, match="similarity"):
        fit(SarParams(similarity="cosine"))
    with pytest.raises(ValueError, match="support_threshold"):
        fit(SarParams(support_threshold=0))


# ---------------------------------------------------------------- persistence
def test_save_load_round_trip_gives_identical_results(tmp_path: Path) -> None:
    model = fit(SarParams(similarity="lift", support_threshold=1, max_neighbors=3))
    path = tmp_path / "model.npz"

    model.save(path)
    loaded = SarModel.load(path)

    assert loaded.params == model.params
    assert (loaded.n_items, loaded.n_users, loaded.now) == (model.n_items, model.n_users, NOW)
    np.testing.assert_array_equal(loaded.popularity, model.popularity)
    requests = [[0], [1, 2], [4], []]
    for got, want in zip(recommend(loaded, requests, 4), recommend(model, requests, 4),
                         strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(loaded.recommend_users(np.array([0, 2]), 3)[0],
                                  model.recommend_users(np.array([0, 2]), 3)[0])
    with np.load(path, allow_pickle=False) as npz:  # loads without pickle
        assert "sim_data" in npz.files
