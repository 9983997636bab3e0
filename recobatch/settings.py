"""App settings, read once into a frozen dataclass; every setting is named here with its default.

:data:`SETTINGS` is the table of settings (name, default, description) the README documents.
Missing or invalid values raise :class:`~recobatch.errors.ConfigurationError` naming the setting.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from recobatch.errors import ConfigurationError

# The v4 batch job reads an input blob of at most 2 MB (2,097,152 bytes).
SERVICE_MAX_JOB_BYTES = 2_097_152
API_NAMES = ("ItemRecommend", "UserRecommend")
OUTPUT_FORMATS = ("json", "jsonl", "csv")  # recobatch.assembly.FORMATS
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
                "Storage connection string (`UseDevelopmentStorage=true` for Azurite); or leave "
                "it unset and use an identity-based connection (the `AzureWebJobsStorage__*` "
                "settings below, see *Identity-based storage*)."),
    SettingSpec("AzureWebJobsStorage__accountName", None,
                "Identity-based storage: the account name (public Azure endpoints)."),
    SettingSpec("AzureWebJobsStorage__blobServiceUri", None,
                "Identity-based storage: blob endpoint (with `__queueServiceUri` and "
                "`__tableServiceUri`, instead of `__accountName`)."),
    SettingSpec("AzureWebJobsStorage__queueServiceUri", None,
                "Identity-based storage: queue endpoint (host and Durable queues)."),
    SettingSpec("AzureWebJobsStorage__tableServiceUri", None,
                "Identity-based storage: table endpoint (Durable history and instances)."),
    SettingSpec("AzureWebJobsStorage__credential", None,
                "`managedidentity` to use a managed identity only; unset: the default chain "
                "(managed identity in Azure, your developer login locally)."),
    SettingSpec("AzureWebJobsStorage__clientId", None,
                "Client id of a user-assigned identity (needs `__credential` = "
                "`managedidentity`); unset: the system-assigned identity. Locally, with "
                "`__tenantId` and `__clientSecret`: a service principal."),
    SettingSpec("AzureWebJobsStorage__tenantId", None,
                "Local development only: the service principal's tenant (with `__clientId` and "
                "`__clientSecret`)."),
    SettingSpec("AzureWebJobsStorage__clientSecret", None,
                "Local development only: the service principal's secret; never logged."),
    SettingSpec("TASKHUB_NAME", None,
                "Durable Functions task hub (host.json `hubName` is `%TASKHUB_NAME%`; the "
                "host, not recobatch, reads it): letters and digits, starting with a letter. "
                "Give each app or slot sharing a storage account its own.", True),
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
    SettingSpec("BATCH_TRIGGER_SOURCE", "LogsAndContainerScan",
                "Blob trigger source, read when the app is indexed: `EventGrid` (Flex "
                "Consumption; needs an Event Grid subscription) or `LogsAndContainerScan` "
                "(polling; Azurite, Core Tools, Consumption/Premium)."),
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
    SettingSpec("BATCH_OUTPUT_FORMAT", "json",
                "Results file format (job setting `outputFormat`, per-file `job` "
                "override): `json` (`results.json`, v4), `jsonl` (`results.jsonl`) or `csv` "
                "(`results.csv`)."),
    SettingSpec("BATCH_NOTIFY_URL", None,
                "Where a CloudEvents 1.0 completion event is POSTed after each run's marker "
                "(https; http only to a loopback host); unset: nothing is sent. Never logged "
                "beyond its host (a webhook URL may carry a key)."),
    SettingSpec("BATCH_NOTIFY_SECRET", None,
                "Key of the `X-Recobatch-Signature: sha256=<hex HMAC-SHA256 of the body>` "
                "header of the completion event; unset: no signature. Never logged."),
    SettingSpec("BATCH_CACHE_TABLE", None,
                "Recommendations cache: the table (same storage account) each scored "
                "request's recommendations are written to, for `GET /api/recommendations`; "
                "a file's `\"job\": {\"cache\": false}` leaves it out. Empty: no cache."),
    SettingSpec("WEBSITE_SITE_NAME", None,
                "Set by Azure (the function app's name); the completion event's `source` is "
                "`/recobatch/<name>` (`/recobatch/local` when unset)."),
    SettingSpec("APPLICATIONINSIGHTS_CONNECTION_STRING", None,
                "Application Insights connection string; set: the app exports its spans, logs "
                "and metrics with `azure-monitor-opentelemetry` (see *Traces in Application "
                "Insights*); unset: no exporter is configured. Read at start by "
                "`recobatch/telemetry.py`."),
    SettingSpec("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", None,
                "`Authorization=AAD` (and `ClientId=<user-assigned identity>`): the app's "
                "telemetry is sent with that managed identity (Microsoft Entra), as the host's; "
                "unset: with the connection string's key."),
    SettingSpec("RECOBATCH_TRACE_FILE", None,
                "Local diagnosis and tests: a file path on this machine; every span is "
                "appended to it as one JSON line (file mode 0600). Unset in Azure."),
)

_SPECS = {spec.name: spec for spec in SETTINGS}

TRIGGER_SOURCES = ("EventGrid", "LogsAndContainerScan")
STORAGE = "AzureWebJobsStorage"
MANAGED_IDENTITY = "managedidentity"
# A user-delegation key, which signs every SAS in identity mode, lives at most 7 days.
USER_DELEGATION_KEY_MAX_DAYS = 7


@dataclass(frozen=True)
class StorageIdentity:
    """An identity-based storage connection (no secret): endpoints and how to get a token.

    ``client_id`` names a user-assigned managed identity; ``credential`` is
    ``"managedidentity"`` (managed identity only) or ``None`` (the default credential chain).
    ``tenant_id`` + ``client_id`` + ``client_secret``: a service principal (local development).
    """

    blob_service_uri: str
    queue_service_uri: str
    table_service_uri: str
    credential: str | None = None
    client_id: str | None = None
    tenant_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Settings:
    """The function app's settings (see :data:`SETTINGS` for names and defaults)."""

    reco_endpoint: str
    reco_subscription_key: str = field(repr=False)
    reco_model_id: str
    storage_connection_string: str | None = field(default=None, repr=False)
    storage_identity: StorageIdentity | None = None
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
    trigger_source: str = "LogsAndContainerScan"
    output_format: str = "json"
    notify_url: str | None = field(default=None, repr=False)
    notify_secret: str | None = field(default=None, repr=False)
    app_name: str = "local"
    cache_table: str | None = None

    @property
    def storage_blob_service_uri(self) -> str | None:
        """The blob endpoint of an identity-based connection (``None`` with a connection
        string)."""
        return self.storage_identity.blob_service_uri if self.storage_identity else None


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


def trigger_source(env: Mapping[str, str] | None = None) -> str:
    """``BATCH_TRIGGER_SOURCE``: ``EventGrid`` or ``LogsAndContainerScan`` (any case).

    Read on its own when the app is indexed (the blob trigger's ``source``), before the other
    settings are needed.
    """
    env = os.environ if env is None else env
    raw = _required(env, "BATCH_TRIGGER_SOURCE")
    for source in TRIGGER_SOURCES:
        if raw.lower() == source.lower():
            return source
    raise ConfigurationError(f"the app setting BATCH_TRIGGER_SOURCE must be one of "
                             f"{', '.join(TRIGGER_SOURCES)}, got {raw!r}.")


def storage_identity(env: Mapping[str, str]) -> StorageIdentity | None:
    """The identity-based ``AzureWebJobsStorage`` connection, or ``None`` when there is none.

    Documented forms (Azure Functions, "Connecting to host storage with an identity"):
    ``__accountName``; or ``__blobServiceUri`` + ``__queueServiceUri`` + ``__tableServiceUri``
    (the host and Durable Functions use all three services); each with optional
    ``__credential`` = ``managedidentity`` and ``__clientId`` for a user-assigned identity, or,
    for local development, ``__tenantId`` + ``__clientId`` + ``__clientSecret`` (a service
    principal).
    """
    def value(suffix: str) -> str | None:
        return _raw(env, f"{STORAGE}__{suffix}")

    account = value("accountName")
    uris = {kind: value(f"{kind}ServiceUri") for kind in ("blob", "queue", "table")}
    credential, client_id = value("credential"), value("clientId")
    tenant_id, client_secret = value("tenantId"), value("clientSecret")
    if account is None and not any(uris.values()):
        if credential or client_id or tenant_id or client_secret:
            raise ConfigurationError(
                f"the app setting {STORAGE}__accountName (or {STORAGE}__blobServiceUri, "
                f"__queueServiceUri and __tableServiceUri) is missing: "
                f"{STORAGE}__credential/__clientId need an account.")
        return None
    if account is not None:
        if not re.fullmatch(r"[a-z0-9]{3,24}", account):
            raise ConfigurationError(f"the app setting {STORAGE}__accountName must be a storage "
                                     f"account name (3-24 lowercase letters and digits), "
                                     f"got {account!r}.")
        for kind, uri in uris.items():
            uris[kind] = uri or f"https://{account}.{kind}.core.windows.net"
    missing = [f"{STORAGE}__{kind}ServiceUri" for kind, uri in uris.items() if not uri]
    if missing:
        raise ConfigurationError(f"identity-based storage needs {', '.join(missing)} "
                                 f"(or {STORAGE}__accountName): the app setting"
                                 f"{'s' if len(missing) > 1 else ''} {' and '.join(missing)} "
                                 f"{'are' if len(missing) > 1 else 'is'} missing.")
    for kind, uri in uris.items():
        if not str(uri).startswith("https://"):
            raise ConfigurationError(f"the app setting {STORAGE}__{kind}ServiceUri must be an "
                                     f"https URL (tokens are never sent over http).")
    if credential is not None and credential.lower() != MANAGED_IDENTITY:
        raise ConfigurationError(f"the app setting {STORAGE}__credential must be "
                                 f"{MANAGED_IDENTITY!r} (or unset), got {credential!r}.")
    principal = {"tenantId": tenant_id, "clientSecret": client_secret}
    if credential is None and (tenant_id or client_secret):
        missing = [f"{STORAGE}__{name}" for name, v in
                   {"clientId": client_id, **principal}.items() if not v]
        if missing:
            raise ConfigurationError(f"a service principal needs {STORAGE}__tenantId, "
                                     f"__clientId and __clientSecret: the app setting"
                                     f"{'s' if len(missing) > 1 else ''} {' and '.join(missing)} "
                                     f"{'are' if len(missing) > 1 else 'is'} missing.")
    elif client_id is not None and credential is None:
        raise ConfigurationError(f"the app setting {STORAGE}__credential is missing: "
                                 f"{STORAGE}__clientId (a user-assigned identity) is used only "
                                 f"with {STORAGE}__credential = {MANAGED_IDENTITY} (or with "
                                 f"__tenantId and __clientSecret for a service principal).")
    if credential is not None and (tenant_id or client_secret):
        raise ConfigurationError(f"the app settings {STORAGE}__tenantId/__clientSecret (a "
                                 f"service principal) contradict {STORAGE}__credential = "
                                 f"{MANAGED_IDENTITY}: use one.")
    return StorageIdentity(blob_service_uri=str(uris["blob"]).rstrip("/"),
                           queue_service_uri=str(uris["queue"]).rstrip("/"),
                           table_service_uri=str(uris["table"]).rstrip("/"),
                           credential=MANAGED_IDENTITY if credential else None,
                           client_id=client_id, tenant_id=tenant_id,
                           client_secret=client_secret)


def _check_delegation_lifetime(timeout_minutes: float) -> None:
    """In identity mode every SAS is signed by a user-delegation key, which lives at most
    7 days: a job's token (``storage.sas_expiry``) must fit in that."""
    from recobatch.storage import sas_expiry  # storage imports this module

    now = datetime.now(UTC)
    lifetime = sas_expiry(timeout_minutes, now) - now
    limit = timedelta(days=USER_DELEGATION_KEY_MAX_DAYS)
    if lifetime > limit:
        margin = (lifetime - timedelta(minutes=timeout_minutes)).total_seconds() / 60
        longest = limit.total_seconds() / 60 - margin
        raise ConfigurationError(
            f"the app setting JOB_TIMEOUT_MINUTES is {timeout_minutes:g}, but with "
            f"identity-based storage a job's SAS is a user-delegation SAS, valid at most "
            f"{USER_DELEGATION_KEY_MAX_DAYS} days: use at most {longest:g} minutes.")


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
    connection = _raw(env, STORAGE)
    # As on the host: a connection string wins over the identity-based settings.
    identity = storage_identity(env) if connection is None else None
    if connection is None and identity is None:
        raise ConfigurationError(f"the app setting {STORAGE} (or an identity-based "
                                 f"{STORAGE}__accountName) is missing.")
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
    job_timeout = _parse(env, "JOB_TIMEOUT_MINUTES", float, "a positive number",
                         lambda v: v > 0)
    if identity is not None:
        _check_delegation_lifetime(job_timeout)
    return Settings(
        reco_endpoint=endpoint,
        reco_subscription_key=_required(env, "RECO_SUBSCRIPTION_KEY"),
        reco_model_id=_required(env, "RECO_MODEL_ID"),
        storage_connection_string=connection,
        storage_identity=identity,
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
        job_timeout_minutes=job_timeout,
        max_concurrent_jobs=_parse(env, "RECO_MAX_CONCURRENT_JOBS", int, positive_int,
                                   lambda v: v > 0),
        trigger_source=trigger_source(env),
        output_format=_parse(env, "BATCH_OUTPUT_FORMAT", str.strip, "json, jsonl or csv",
                             lambda v: v in OUTPUT_FORMATS),
        notify_url=notify_url(env),
        notify_secret=_raw(env, "BATCH_NOTIFY_SECRET"),
        app_name=_raw(env, "WEBSITE_SITE_NAME") or "local",
        cache_table=cache_table(env),
    )


def cache_table(env: Mapping[str, str]) -> str | None:
    """``BATCH_CACHE_TABLE``: a table name (3-63 letters and digits, a letter first), or
    ``None`` (no cache)."""
    raw = _raw(env, "BATCH_CACHE_TABLE")
    if raw is None:
        return None
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,62}", raw):
        raise ConfigurationError("the app setting BATCH_CACHE_TABLE must be a table name (3-63 "
                                 f"letters and digits, starting with a letter), got {raw[:80]!r}.")
    return raw


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def notify_url(env: Mapping[str, str]) -> str | None:
    """``BATCH_NOTIFY_URL``: an https URL (http only to a loopback host), or ``None``.

    Parsed by :func:`urllib.parse.urlsplit`, as requests (urllib3) will parse it; the message
    never shows the URL (its query may be a webhook's key).
    """
    raw = _raw(env, "BATCH_NOTIFY_URL")
    if raw is None:
        return None
    try:
        parts = urlsplit(raw)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        host = None
    if not host or parts.scheme not in ("https", "http") or parts.username or parts.password:
        raise ConfigurationError("the app setting BATCH_NOTIFY_URL must be an absolute https "
                                 "URL without user information.")
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        raise ConfigurationError("the app setting BATCH_NOTIFY_URL must use https (http is "
                                 "allowed only to 127.0.0.1, ::1 or localhost).")
    return raw


@functools.cache
def get_settings() -> Settings:
    """Return the settings of this process, read from the environment once.

    Tests that change the environment call ``get_settings.cache_clear()``.
    """
    return load_settings()
