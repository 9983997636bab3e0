"""Settings: defaults, validation naming the setting, the key kept out of repr."""

from __future__ import annotations

import pytest

from recobatch.errors import ConfigurationError
from recobatch.settings import SETTINGS, Settings, load_settings

BASE = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "RECO_ENDPOINT": "http://127.0.0.1:1/recommendations/v4.0",
    "RECO_SUBSCRIPTION_KEY": "super-secret-key",
    "RECO_MODEL_ID": "model-1",
}


def test_defaults_apply_when_only_required_settings_are_given():
    settings = load_settings(BASE)

    assert settings.reco_api_name == "ItemRecommend"
    assert settings.reco_number_of_results == 10
    assert settings.reco_include_metadata is False
    assert settings.max_job_bytes == 2_000_000
    assert settings.max_input_bytes == 512 * 1024 * 1024
    assert (settings.input_container, settings.output_container, settings.work_container) == (
        "batch-input", "batch-output", "batch-work")
    assert settings.reco_build_id is None
    assert settings.max_concurrent_jobs == 1


def test_key_and_connection_string_never_appear_in_repr():
    settings = load_settings({**BASE, "AzureWebJobsStorage": "AccountKey=abcsecret"})

    assert "super-secret-key" not in repr(settings)
    assert "abcsecret" not in repr(settings)


@pytest.mark.parametrize("missing", ["RECO_ENDPOINT", "RECO_SUBSCRIPTION_KEY", "RECO_MODEL_ID",
                                     "AzureWebJobsStorage"])
def test_a_missing_setting_is_named(missing):
    env = {k: v for k, v in BASE.items() if k != missing}

    with pytest.raises(ConfigurationError) as info:
        load_settings(env)

    assert missing in str(info.value)
    assert str(info.value).startswith("ConfigurationError: ")


@pytest.mark.parametrize(("name", "value"), [
    ("RECO_ENDPOINT", "http://127.0.0.1:1/other"),
    ("RECO_API_NAME", "ItemFbtRecommend"),
    ("RECO_BUILD_ID", "abc"),
    ("RECO_NUMBER_OF_RESULTS", "0"),
    ("RECO_INCLUDE_METADATA", "maybe"),
    ("RECO_MINIMAL_SCORE", "x"),
    ("BATCH_MAX_JOB_BYTES", "2097153"),
    ("POLL_INITIAL_SECONDS", "-1"),
    ("RECO_MAX_CONCURRENT_JOBS", "0"),
])
def test_an_invalid_setting_is_named(name, value):
    with pytest.raises(ConfigurationError) as info:
        load_settings({**BASE, name: value})

    assert name in str(info.value)


def test_identity_based_storage_is_enough():
    env = {k: v for k, v in BASE.items() if k != "AzureWebJobsStorage"}
    env["AzureWebJobsStorage__blobServiceUri"] = "https://acct.blob.core.windows.net"

    settings = load_settings(env)

    assert settings.storage_blob_service_uri == "https://acct.blob.core.windows.net"
    assert settings.storage_connection_string is None


def test_values_are_parsed():
    settings = load_settings({**BASE, "RECO_BUILD_ID": "1015703", "RECO_INCLUDE_METADATA": "True",
                              "RECO_MINIMAL_SCORE": "0.25", "BATCH_MAX_JOB_BYTES": "2097152"})

    assert settings.reco_build_id == 1015703
    assert settings.reco_include_metadata is True
    assert settings.reco_minimal_score == 0.25
    assert settings.max_job_bytes == 2_097_152


def test_settings_table_names_every_setting_once_with_defaults_matching_the_dataclass():
    names = [spec.name for spec in SETTINGS]
    settings = load_settings(BASE)

    assert len(names) == len(set(names))
    assert {"RECO_ENDPOINT", "BATCH_MAX_INPUT_BYTES", "JOB_TIMEOUT_MINUTES"} <= set(names)
    defaults = {spec.name: spec.default for spec in SETTINGS}
    assert int(defaults["BATCH_MAX_JOB_BYTES"]) == settings.max_job_bytes == \
        Settings.__dataclass_fields__["max_job_bytes"].default
    assert float(defaults["POLL_MAX_SECONDS"]) == settings.poll_max_seconds


@pytest.mark.parametrize(("name", "value"), [
    ("POLL_MAX_SECONDS", "inf"), ("JOB_TIMEOUT_MINUTES", "infinity"),
    ("POLL_INITIAL_SECONDS", "inf"), ("RECO_MINIMAL_SCORE", "nan"),
])
def test_a_non_finite_number_is_refused_naming_the_setting(name, value):
    # inf would overflow the orchestrators' timedelta; NaN is not JSON the service accepts.
    with pytest.raises(ConfigurationError) as caught:
        load_settings({**BASE, name: value})

    assert name in caught.value.message


@pytest.mark.parametrize(("same", "names"), [
    ({"BATCH_OUTPUT_CONTAINER": "batch-input"},
     ("BATCH_INPUT_CONTAINER", "BATCH_OUTPUT_CONTAINER")),
    ({"BATCH_WORK_CONTAINER": "batch-input"}, ("BATCH_INPUT_CONTAINER", "BATCH_WORK_CONTAINER")),
    ({"BATCH_WORK_CONTAINER": "shared", "BATCH_OUTPUT_CONTAINER": "shared"},
     ("BATCH_OUTPUT_CONTAINER", "BATCH_WORK_CONTAINER")),
])
def test_input_output_and_work_containers_must_differ(same, names):
    # One container for two roles: the blob trigger would fire on outputs, or a run's
    # work blobs would land among the results.
    with pytest.raises(ConfigurationError) as caught:
        load_settings({**BASE, **same})

    for name in names:
        assert name in caught.value.message
