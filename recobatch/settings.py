"""App settings, read once into a frozen dataclass; every setting is named here with its default.

:data:`SETTINGS` is the table of settings (name, default, description) the README documents.
Missing or invalid values raise :class:`~recobatch.errors.ConfigurationError` naming the setting.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from recobatch.errors import ConfigurationError

# The v4 batch job reads an input blob of at most 2 MB (2,097,152 bytes).
SERVICE_MAX_JOB_BYTES = 2_097_152
API_NAMES = ("ItemRecommend", "UserRecommend")
ENDPOINT_SUFFIX = "/recommendations/v4.0"


@dataclass(frozen=True)
class SettingSpec:
    """One app setting: its name, default (``None`` = required or optional, see ``required``)."""

    name: str
    default: str | None
    description: str
    required: bool = False


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("AzureWebJobsStorage", None,
                "Storage connection string (`UseDevelopmentStorage=true` for Azurite); "
                "or use `AzureWebJobsStorage__blobServiceUri` with a managed identity."),
    SettingSpec("AzureWebJobsStorage__blobServiceUri", None,
                "Blob endpoint for identity-based storage (DefaultAzureCredential)."),
    SettingSpec("RECO_ENDPOINT", None,
                "Recommendations API base URL, ending with `/recommendations/v4.0`.", True),
    SettingSpec("RECO_SUBSCRIPTION_KEY", None,
                "Subscription key (`Ocp-Apim-Subscription-Key`); never logged.", True),
    SettingSpec("RECO_MODEL_ID", None, "Model id (GUID) the batch jobs score with.", True),
    SettingSpec("RECO_BUILD_ID", None, "Build id (integer); the model's active build if unset."),
    SettingSpec("RECO_API_NAME", "ItemRecommend", "`ItemRecommend` or `UserRecommend`."),
    SettingSpec("RECO_NUMBER_OF_RESULTS", "10", "Recommendations per request (1-100)."),
    SettingSpec("RECO_INCLUDE_METADATA", "false", "Include item metadata in results."),
    SettingSpec("RECO_MINIMAL_SCORE", "0.0", "Minimal score of a recommendation."),
    SettingSpec("BATCH_INPUT_CONTAINER", "batch-input", "Container watched for requests files."),
    SettingSpec("BATCH_OUTPUT_CONTAINER", "batch-output", "Container for results and markers."),
    SettingSpec("BATCH_WORK_CONTAINER", "batch-work", "Container for chunk inputs and outputs."),
    SettingSpec("BATCH_MAX_JOB_BYTES", "2000000",
                "Largest chunk input in bytes (at most 2,097,152, the service limit)."),
    SettingSpec("BATCH_MAX_INPUT_BYTES", str(512 * 1024 * 1024),
                "Largest requests file accepted, in bytes (512 MB)."),
    SettingSpec("POLL_INITIAL_SECONDS", "5", "First wait between job status checks."),
    SettingSpec("POLL_MAX_SECONDS", "60", "Longest wait between job status checks."),
    SettingSpec("JOB_TIMEOUT_MINUTES", "360", "A chunk's job is given up after this long."),
    SettingSpec("RECO_MAX_CONCURRENT_JOBS", "1",
                "Chunks in flight at once per run (the service runs one job per subscription)."),
)

_SPECS = {spec.name: spec for spec in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """The function app's settings (see :data:`SETTINGS` for names and defaults)."""

    reco_endpoint: str
    reco_subscription_key: str = field(repr=False)
    reco_model_id: str
    storage_connection_string: str | None = field(default=None, repr=False)
    storage_blob_service_uri: str | None = None
    reco_build_id: int | None = None
    reco_api_name: str = "ItemRecommend"
    reco_number_of_results: int = 10
    reco_include_metadata: bool = False
    reco_minimal_score: float = 0.0
    input_container: str = "batch-input"
    output_container: str = "batch-output"
    work_container: str = "batch-work"
    max_job_bytes: int = 2_000_000
    max_input_bytes: int = 512 * 1024 * 1024
    poll_initial_seconds: float = 5.0
    poll_max_seconds: float = 60.0
    job_timeout_minutes: float = 360.0
    max_concurrent_jobs: int = 1


def _raw(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        return _SPECS[name].default
    return value.strip()


def _required(env: Mapping[str, str], name: str) -> str:
    value = _raw(env, name)
    if value is None:
        raise ConfigurationError(f"the app setting {name} is missing.")
    return value


def _parse(env: Mapping[str, str], name: str, kind: Callable[[str], Any], what: str,
           check: Callable[[Any], bool] = lambda _v: True) -> Any:
    raw = _required(env, name)
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if isinstance(value, float) and not math.isfinite(value):
        value = None  # inf overflows the orchestrators' clock; NaN is not JSON
    if value is None or not check(value):
        # The value is shown: none of the numeric/bool settings is a secret.
        raise ConfigurationError(f"the app setting {name} must be {what}, got {raw!r}.")
    return value


def parse_bool(raw: str) -> bool:
    """Parse ``true/false/1/0/yes/no`` (any case); raise ``ValueError`` otherwise."""
    text = raw.strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(raw)


CONTAINER_SETTINGS = ("BATCH_INPUT_CONTAINER", "BATCH_OUTPUT_CONTAINER", "BATCH_WORK_CONTAINER")


def _distinct_containers(env: Mapping[str, str]) -> None:
    """Input, output and work must be three containers: outputs in the input container would
    fire the blob trigger, and work blobs among the outputs could overwrite results."""
    seen: dict[str, str] = {}
    for name in CONTAINER_SETTINGS:
        value = _required(env, name)
        if value in seen:
            raise ConfigurationError(f"the app settings {seen[value]} and {name} name the same "
                                     f"container {value!r}; input, output and work containers "
                                     "must differ.")
        seen[value] = name


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every app setting.

    Parameters
    ----------
    env : Mapping, optional
        Where to read from; ``os.environ`` by default.

    Raises
    ------
    ConfigurationError
        When a setting is missing or invalid; the message names it (never its secret value).
    """
    env = os.environ if env is None else env
    connection = _raw(env, "AzureWebJobsStorage")
    service_uri = _raw(env, "AzureWebJobsStorage__blobServiceUri")
    if connection is None and service_uri is None:
        raise ConfigurationError("the app setting AzureWebJobsStorage (or "
                                 "AzureWebJobsStorage__blobServiceUri) is missing.")
    endpoint = _required(env, "RECO_ENDPOINT").rstrip("/")
    if not endpoint.startswith(("http://", "https://")) or not endpoint.endswith(ENDPOINT_SUFFIX):
        raise ConfigurationError(
            f"the app setting RECO_ENDPOINT must be an http(s) URL ending with {ENDPOINT_SUFFIX}.")
    api_name = _required(env, "RECO_API_NAME")
    if api_name not in API_NAMES:
        raise ConfigurationError(
            f"the app setting RECO_API_NAME must be one of {', '.join(API_NAMES)}, "
            f"got {api_name!r}.")
    build_raw = _raw(env, "RECO_BUILD_ID")
    build_id = None
    if build_raw is not None:
        build_id = _parse(env, "RECO_BUILD_ID", int, "an integer")
    positive_int = "a positive integer"
    _distinct_containers(env)
    return Settings(
        reco_endpoint=endpoint,
        reco_subscription_key=_required(env, "RECO_SUBSCRIPTION_KEY"),
        reco_model_id=_required(env, "RECO_MODEL_ID"),
        storage_connection_string=connection,
        storage_blob_service_uri=service_uri,
        reco_build_id=build_id,
        reco_api_name=api_name,
        reco_number_of_results=_parse(env, "RECO_NUMBER_OF_RESULTS", int, "an integer 1-100",
                                      lambda v: 1 <= v <= 100),
        reco_include_metadata=_parse(env, "RECO_INCLUDE_METADATA", parse_bool, "true or false"),
        reco_minimal_score=_parse(env, "RECO_MINIMAL_SCORE", float, "a number"),
        input_container=_required(env, "BATCH_INPUT_CONTAINER"),
        output_container=_required(env, "BATCH_OUTPUT_CONTAINER"),
        work_container=_required(env, "BATCH_WORK_CONTAINER"),
        max_job_bytes=_parse(env, "BATCH_MAX_JOB_BYTES", int,
                             f"an integer from 1024 to {SERVICE_MAX_JOB_BYTES}",
                             lambda v: 1024 <= v <= SERVICE_MAX_JOB_BYTES),
        max_input_bytes=_parse(env, "BATCH_MAX_INPUT_BYTES", int, positive_int, lambda v: v > 0),
        poll_initial_seconds=_parse(env, "POLL_INITIAL_SECONDS", float, "a positive number",
                                    lambda v: v > 0),
        poll_max_seconds=_parse(env, "POLL_MAX_SECONDS", float, "a positive number",
                                lambda v: v > 0),
        job_timeout_minutes=_parse(env, "JOB_TIMEOUT_MINUTES", float, "a positive number",
                                   lambda v: v > 0),
        max_concurrent_jobs=_parse(env, "RECO_MAX_CONCURRENT_JOBS", int, positive_int,
                                   lambda v: v > 0),
    )


@functools.cache
def get_settings() -> Settings:
    """Return the settings of this process, read from the environment once.

    Tests that change the environment call ``get_settings.cache_clear()``.
    """
    return load_settings()
