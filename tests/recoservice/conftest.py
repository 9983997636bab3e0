"""Fixtures for the recoservice route tests (helpers live in ``reco_api_helpers``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from reco_api_helpers import (
    TINY_CATALOG,
    TINY_SAR,
    TINY_USAGE,
    TinyModel,
    build,
    create_model,
    upload,
)


@pytest.fixture
def tiny_model_factory(recoservice) -> Callable[..., TinyModel]:
    def make(reco=recoservice, sar: dict | None = None) -> TinyModel:
        model_id = create_model(reco)
        assert upload(reco, model_id, "catalog", TINY_CATALOG).status_code == 200
        assert upload(reco, model_id, "usage", TINY_USAGE).status_code == 200
        _, op = build(reco, model_id, {"buildType": "sar",
                                       "buildParameters": {"sar": sar or TINY_SAR}})
        assert op["status"] == "Succeeded", op
        return TinyModel(model_id, op["result"]["buildId"],
                         f"{reco.base_url}/models/{model_id}")
    return make


@pytest.fixture
def tiny_model(tiny_model_factory) -> TinyModel:
    return tiny_model_factory()
