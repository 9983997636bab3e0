"""Fixtures for activity tests: app settings pointing at the real Azurite and recoservice."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest


@pytest.fixture
def app_env(use_app_env, storage_connection_string: str, recoservice) -> dict[str, str]:
    """The function app's environment for one test, with private containers."""
    tag = uuid.uuid4().hex[:10]
    env = {
        "AzureWebJobsStorage": storage_connection_string,
        "RECO_ENDPOINT": recoservice.base_url,
        "RECO_SUBSCRIPTION_KEY": recoservice.key,
        "RECO_MODEL_ID": recoservice.demo_model_id,
        "RECO_NUMBER_OF_RESULTS": "3",
        "BATCH_INPUT_CONTAINER": f"in{tag}",
        "BATCH_OUTPUT_CONTAINER": f"out{tag}",
        "BATCH_WORK_CONTAINER": f"work{tag}",
        "POLL_INITIAL_SECONDS": "2",
    }
    return use_app_env(env)


@pytest.fixture
def containers(app_env, blob_service):
    """The input, output and work container clients (input created)."""
    made = {role: blob_service.get_container_client(app_env[f"BATCH_{role.upper()}_CONTAINER"])
            for role in ("input", "output", "work")}
    made["input"].create_container()
    yield made
    for client in made.values():
        if client.exists():
            client.delete_container()


@pytest.fixture
def set_env(use_app_env) -> Callable[[str, str], None]:
    """Change one app setting mid-test (settings cache cleared)."""
    def change(name: str, value: str) -> None:
        use_app_env({name: value})
    return change
