"""Fixtures for activity tests: app settings pointing at the real Azurite and recoservice."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from recobatch.settings import get_settings


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, storage_connection_string: str,
            recoservice) -> Iterator[dict[str, str]]:
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
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


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
def set_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], None]:
    """Change one app setting mid-test (settings cache cleared)."""
    def change(name: str, value: str) -> None:
        monkeypatch.setenv(name, value)
        get_settings.cache_clear()
    return change
