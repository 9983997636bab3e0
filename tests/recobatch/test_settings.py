"""Settings: defaults, validation naming the setting, the key kept out of repr."""

from __future__ import annotations

import pytest

from recobatch.errors import ConfigurationError
from recobatch.settings import (
    SETTINGS,
    Settings,
    StorageIdentity,
    load_settings,
    trigger_source,
)

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


NO_CONNECTION = {k: v for k, v in BASE.items() if k != "AzureWebJobsStorage"}
URIS = {"AzureWebJobsStorage__blobServiceUri": "https://acct.blob.core.windows.net",
        "AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.windows.net",
        "AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.windows.net"}


def test_identity_by_account_name_gives_the_three_public_endpoints():
    settings = load_settings({**NO_CONNECTION, "AzureWebJobsStorage__accountName": "acct"})

    assert settings.storage_identity == StorageIdentity(
        "https://acct.blob.core.windows.net", "https://acct.queue.core.windows.net",
        "https://acct.table.core.windows.net", credential=None, client_id=None)
    assert settings.storage_connection_string is None


def test_identity_by_the_three_service_uris():
    settings = load_settings({**NO_CONNECTION, **URIS})

    assert settings.storage_blob_service_uri == "https://acct.blob.core.windows.net"
    assert settings.storage_identity is not None
    assert settings.storage_identity.table_service_uri == "https://acct.table.core.windows.net"


@pytest.mark.parametrize("missing", ["AzureWebJobsStorage__queueServiceUri",
                                     "AzureWebJobsStorage__tableServiceUri"])
def test_a_blob_service_uri_alone_is_refused_naming_what_is_missing(missing):
    env = {**NO_CONNECTION, **{k: v for k, v in URIS.items() if k != missing}}

    with pytest.raises(ConfigurationError) as caught:
        load_settings(env)

    assert missing in caught.value.message


def test_user_assigned_identity_keeps_its_client_id():
    settings = load_settings({**NO_CONNECTION, "AzureWebJobsStorage__accountName": "acct",
                              "AzureWebJobsStorage__credential": "ManagedIdentity",
                              "AzureWebJobsStorage__clientId": "1111-client"})

    assert settings.storage_identity is not None
    assert settings.storage_identity.credential == "managedidentity"
    assert settings.storage_identity.client_id == "1111-client"


@pytest.mark.parametrize(("extra", "named"), [
    ({"AzureWebJobsStorage__clientId": "1111"}, "AzureWebJobsStorage__credential"),
    ({"AzureWebJobsStorage__credential": "clientsecret"}, "AzureWebJobsStorage__credential"),
    ({"AzureWebJobsStorage__accountName": "Not_An_Account"}, "AzureWebJobsStorage__accountName"),
])
def test_a_bad_identity_setting_is_named(extra, named):
    env = {**NO_CONNECTION, "AzureWebJobsStorage__accountName": "acct", **extra}

    with pytest.raises(ConfigurationError) as caught:
        load_settings(env)

    assert named in caught.value.message


def test_service_principal_for_local_development():
    settings = load_settings({**NO_CONNECTION, "AzureWebJobsStorage__accountName": "acct",
                              "AzureWebJobsStorage__tenantId": "tenant-1",
                              "AzureWebJobsStorage__clientId": "sp-1",
                              "AzureWebJobsStorage__clientSecret": "sp-secret"})

    assert settings.storage_identity is not None
    assert (settings.storage_identity.tenant_id, settings.storage_identity.client_id) == (
        "tenant-1", "sp-1")
    assert "sp-secret" not in repr(settings)


@pytest.mark.parametrize(("extra", "named"), [
    ({"AzureWebJobsStorage__tenantId": "t", "AzureWebJobsStorage__clientId": "c"},
     "AzureWebJobsStorage__clientSecret"),
    ({"AzureWebJobsStorage__clientSecret": "s"}, "AzureWebJobsStorage__tenantId"),
    ({"AzureWebJobsStorage__credential": "managedidentity", "AzureWebJobsStorage__tenantId": "t",
      "AzureWebJobsStorage__clientSecret": "s"}, "AzureWebJobsStorage__credential"),
])
def test_an_incomplete_or_contradictory_service_principal_is_named(extra, named):
    with pytest.raises(ConfigurationError) as caught:
        load_settings({**NO_CONNECTION, "AzureWebJobsStorage__accountName": "acct", **extra})

    assert named in caught.value.message


def test_a_client_id_without_an_account_names_the_account_setting():
    with pytest.raises(ConfigurationError) as caught:
        load_settings({**NO_CONNECTION, "AzureWebJobsStorage__credential": "managedidentity",
                       "AzureWebJobsStorage__clientId": "1111"})

    assert "AzureWebJobsStorage__accountName" in caught.value.message


def test_a_connection_string_wins_over_identity_settings():
    settings = load_settings({**BASE, "AzureWebJobsStorage__accountName": "acct"})

    assert settings.storage_identity is None


def test_identity_mode_refuses_a_job_timeout_no_user_delegation_sas_can_cover():
    # A user-delegation key lives at most 7 days (10,080 minutes); the SAS adds a margin.
    env = {**NO_CONNECTION, "AzureWebJobsStorage__accountName": "acct"}

    with pytest.raises(ConfigurationError) as caught:
        load_settings({**env, "JOB_TIMEOUT_MINUTES": "10080"})

    assert "JOB_TIMEOUT_MINUTES" in caught.value.message
    assert load_settings({**env, "JOB_TIMEOUT_MINUTES": "10000"}).job_timeout_minutes == 10000
    # with an account key the SAS is a service SAS: no such limit
    assert load_settings({**BASE, "JOB_TIMEOUT_MINUTES": "20000"}).job_timeout_minutes == 20000


def test_trigger_source_defaults_to_polling_and_accepts_event_grid():
    assert trigger_source({}) == "LogsAndContainerScan"
    assert trigger_source({"BATCH_TRIGGER_SOURCE": "eventgrid"}) == "EventGrid"
    assert load_settings({**BASE, "BATCH_TRIGGER_SOURCE": "EventGrid"}).trigger_source == \
        "EventGrid"
    with pytest.raises(ConfigurationError) as caught:
        trigger_source({"BATCH_TRIGGER_SOURCE": "Queue"})
    assert "BATCH_TRIGGER_SOURCE" in caught.value.message


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
