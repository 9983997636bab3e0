"""Scorer in process: one vectorised call for many requests, errors per request, cancel."""

from __future__ import annotations

from pathlib import Path

import pytest
from reco_api_helpers import TINY_CATALOG, TINY_USAGE

from recoservice.builder import create_build, parse_build_request, run_build
from recoservice.errors import ApiError
from recoservice.imports import import_catalog, import_usage
from recoservice.models_api import create_model
from recoservice.scoring import Scorer
from recoservice.state import State


@pytest.fixture
def built(tmp_path: Path, state_factory) -> tuple[State, str]:
    state = state_factory(tmp_path)
    model_id = create_model(state, "tiny")["id"]
    import_catalog(state, model_id, TINY_CATALOG.encode(), "c")
    import_usage(state, model_id, TINY_USAGE.encode(), "u")
    request = parse_build_request({"buildParameters": {"sar": {"supportThreshold": 1}}})
    run_build(state, model_id, create_build(state, model_id, request, None), None)
    return state, model_id


def test_many_requests_in_one_call_match_single_calls(built):
    state, model_id = built
    scorer = Scorer(state)
    seed_lists = [["ITEM-A"], ["ITEM-C", "ITEM-D"], ["NOPE"], ["ITEM-B", "ITEM-B"], []] * 20

    together = scorer.recommend_items(model_id, None, seed_lists, 3)
    alone = [scorer.recommend_items(model_id, None, [seeds], 3)[0] for seeds in seed_lists]

    assert together == alone
    assert len(together) == 100


def test_unknown_seeds_give_an_error_and_no_recommendations(built):
    state, model_id = built

    scored = Scorer(state).recommend_items(model_id, None, [["NOPE", "ALSO-NOPE"]], 5)

    assert scored[0].recommendations == []
    assert scored[0].error == "none of the seed items are in the catalog"


def test_recommendation_dicts_use_item_id_keys(built):
    state, model_id = built

    rec = Scorer(state).recommend_items(model_id, None, [["ITEM-A"]], 1)[0].recommendations[0]

    assert rec == {"itemId": "ITEM-B", "name": "Bravo", "metadata": "", "rating": 1.0,
                   "reasoning": ["People who like 'Alpha' also like 'Bravo'"]}


def test_unknown_user_gets_an_error(built):
    state, model_id = built

    scored = Scorer(state).recommend_users(model_id, None, ["u1", "ghost"], 2)

    assert scored[0].error is None and scored[0].recommendations
    assert scored[1].error == "user 'ghost' is not in the usage data"


@pytest.mark.parametrize("k", [0, 101])
def test_number_of_results_outside_1_to_100_is_refused(built, k):
    state, model_id = built

    with pytest.raises(ApiError) as caught:
        Scorer(state).recommend_items(model_id, None, [["ITEM-A"]], k)

    assert caught.value.status == 400


def test_cancel_requested_before_the_build_runs_ends_it_cancelled(built):
    state, model_id = built
    op_id = state.create_operation("BuildModel", "key")
    build_id = create_build(state, model_id, parse_build_request({}), op_id)
    state.request_cancel(op_id)

    run_build(state, model_id, build_id, op_id)

    assert state.get_operation(op_id)["status"] == "Cancelled"
    with state.db() as conn:
        row = conn.execute("SELECT status FROM builds WHERE id = ?", (build_id,)).fetchone()
    assert row["status"] == "Cancelled"


def test_scoring_leaves_the_garbage_collector_enabled(built):
    import gc

    state, model_id = built

    Scorer(state).recommend_items(model_id, None, [["ITEM-A"]] * 50, 3)

    assert gc.isenabled()


def test_a_changed_active_build_is_seen_by_the_next_call(built):
    state, model_id = built
    scorer = Scorer(state)
    first = scorer.resolve_build(model_id, None)
    request = parse_build_request({"buildParameters": {"sar": {"supportThreshold": 1}}})
    second = create_build(state, model_id, request, None)
    run_build(state, model_id, second, None)

    assert scorer.resolve_build(model_id, None) == second != first
    with state.db() as conn:
        conn.execute("UPDATE models SET active_build_id = ? WHERE id = ?", (first, model_id))
    assert scorer.resolve_build(model_id, None) == first
    with state.db() as conn:
        conn.execute("UPDATE builds SET status = 'Failed' WHERE id = ?", (first,))
    with pytest.raises(ApiError) as caught:
        scorer.resolve_build(model_id, None)
    assert caught.value.code == "BuildNotReady"
