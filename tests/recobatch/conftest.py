"""Fixtures for library tests: app settings pointing at the real Azurite and recoservice."""

from __future__ import annotations

import pytest

from recobatch.settings import Settings, load_settings


@pytest.fixture
def app_env(use_app_env, storage_connection_string: str, recoservice) -> dict[str, str]:
    """Environment of the function app for one test (settings cache cleared around it)."""
    env = {
        "AzureWebJobsStorage": storage_connection_string,
        "RECO_ENDPOINT": recoservice.base_url,
        "RECO_SUBSCRIPTION_KEY": recoservice.key,
        "RECO_MODEL_ID": recoservice.demo_model_id,
        "POLL_INITIAL_SECONDS": "1",
        "JOB_TIMEOUT_MINUTES": "30",
    }
    return use_app_env(env)


@pytest.fixture
def app_settings(app_env: dict[str, str]) -> Settings:
    return load_settings(app_env)
