"""Blob storage: the shared client, containers, SAS locations for batch jobs, big-blob streams.

The :class:`~azure.storage.blob.BlobServiceClient` is created lazily once per process from the
settings: a connection string (``UseDevelopmentStorage=true`` for Azurite, or one with an
account key) or an identity-based connection (:class:`~recobatch.settings.StorageIdentity`):
``ManagedIdentityCredential`` (with the user-assigned identity's client id, if any) when
``AzureWebJobsStorage__credential`` is ``managedidentity``, else ``DefaultAzureCredential``.
With an identity there is no account key anywhere: every SAS is a user-delegation SAS.

SAS for batch jobs (:func:`sas_location`): one blob per token, least permission (read for the
input; create+write for output and error blobs), starting 5 minutes in the past (clock skew).
The job reads its input when it starts but writes its output when it ends, which may be up to
``JOB_TIMEOUT_MINUTES`` after the submit; so a token lives ``JOB_TIMEOUT_MINUTES`` plus a
15-minute margin (:func:`sas_expiry`). A chunk's tokens are minted at its first submit and
reused, in this process's memory only (:class:`SasReuse`), by its busy retries until one is
accepted: a service that answers 409/429 for hours does not collect a fresh set of live
tokens every few seconds. They never enter a history, a marker or a log.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import quote

from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import (
    BlobBlock,
    BlobClient,
    BlobSasPermissions,
    BlobServiceClient,
    ContainerClient,
    ContentSettings,
    generate_blob_sas,
)

from recobatch.errors import InputError, StorageError, SupersededError
from recobatch.limits import safe_text
from recobatch.settings import MANAGED_IDENTITY, Settings, StorageIdentity, get_settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.data.tables import TableServiceClient

SAS_CLOCK_SKEW = timedelta(minutes=5)
SAS_MARGIN = timedelta(minutes=15)
BLOCK_SIZE = 4 * 1024 * 1024
# Put Block calls carry the block's MD5 (Content-MD5, ``validate_content``): storage checks
# it, so a block corrupted in transit is refused. Without it Azurite 3.37 computes a CRC64
# of every staged block in JavaScript instead (the Put Block contract echoes one), which was
# more than half of its CPU in the end-to-end benchmark; hashlib's MD5 costs ~0.2 s per
# 100 MB here and releases the GIL. See bench/README.md.
STAGE_OPTIONS: dict[str, Any] = {"validate_content": True}
# Range size of streamed reads. The SDK and urllib3 hold several copies of a response body
# while reading it, so smaller ranges keep the peak low at little cost in requests.
READ_RANGE = 1024 * 1024
# Range size of read-ahead (whole-blob sequential) reads: over 4 MiB, because Azurite 3.37
# hashes every range of up to 4 MiB of a blob without a stored MD5 (every blob committed from
# blocks), reading it twice, which was a fifth of its CPU in the end-to-end benchmark. Azure
# never hashes a range unless asked (x-ms-range-get-content-md5); bigger ranges also mean
# fewer requests there.
READ_AHEAD_RANGE = 8 * 1024 * 1024
# Keep azure-core from retrying for minutes against a dead endpoint; activities are retried by
# the orchestrator instead.
# Downloads go in READ_AHEAD_RANGE requests at most (the SDK's first GET would otherwise take
# up to 32 MiB into memory), so streaming a big blob costs a few ranges whatever its size.
_CLIENT_OPTIONS: dict[str, Any] = {"connection_timeout": 10, "read_timeout": 120,
                                   "retry_total": 3, "max_single_get_size": READ_AHEAD_RANGE,
                                   "max_chunk_get_size": READ_AHEAD_RANGE}

_lock = threading.Lock()
# The process's service clients, by maker and connection: blobs here, the cache's table in
# recobatch.cache.
_clients: dict[tuple[Callable[[Settings], Any], str | None, StorageIdentity | None], Any] = {}
_ServiceT = TypeVar("_ServiceT", "BlobServiceClient", "TableServiceClient")


def service_client(settings: Settings | None = None) -> BlobServiceClient:
    """The process-wide :class:`BlobServiceClient` for these settings (created once)."""
    return shared_client(settings or get_settings(), _make_client)


def _make_client(settings: Settings) -> BlobServiceClient:
    return connect(BlobServiceClient, "blob", settings, _CLIENT_OPTIONS,
                   malformed="the AzureWebJobsStorage connection string is malformed.")


def shared_client(settings: Settings, make: Callable[[Settings], _ServiceT]) -> _ServiceT:
    """The process-wide client that ``make`` builds for these settings (built once)."""
    key = (make, settings.storage_connection_string, settings.storage_identity)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = make(settings)
        return client


def connect(client_class: type[_ServiceT], kind: Literal["blob", "table"], settings: Settings,
            options: dict[str, Any], malformed: str) -> _ServiceT:
    """A new ``client_class`` for the settings' storage connection (``AzureWebJobsStorage``).

    From the connection string, else from the identity's ``kind`` service URI with
    :func:`credential_for`. ``malformed`` is the error when the SDK refuses the connection
    string: the SDK's own message may quote it, key and all.
    """
    if settings.storage_connection_string:
        try:
            return client_class.from_connection_string(settings.storage_connection_string,
                                                       **options)
        except ValueError:
            raise StorageError(malformed) from None
    identity = settings.storage_identity
    if identity is None:
        raise StorageError("no storage connection is configured.")
    endpoint = identity.blob_service_uri if kind == "blob" else identity.table_service_uri
    return client_class(endpoint, credential=credential_for(identity), **options)


def credential_for(identity: StorageIdentity) -> TokenCredential:
    """The token credential of an identity-based connection, as the Functions host builds it.

    ``__credential=managedidentity``: a managed identity only, the user-assigned one named by
    ``__clientId`` if set, else the system-assigned one. ``__tenantId`` + ``__clientId`` +
    ``__clientSecret``: that service principal (local development). Else the default chain (the
    app's managed identity in Azure, the developer's login locally).
    """
    from azure.identity import (
        ClientSecretCredential,
        DefaultAzureCredential,
        ManagedIdentityCredential,
    )

    if identity.credential == MANAGED_IDENTITY:
        return ManagedIdentityCredential(client_id=identity.client_id)
    if identity.client_secret and identity.tenant_id and identity.client_id:
        return ClientSecretCredential(identity.tenant_id, identity.client_id,
                                      identity.client_secret)
    return DefaultAzureCredential()


def ensure_container(client: BlobServiceClient, name: str) -> ContainerClient:
    """Return the container, creating it when missing."""
    container = client.get_container_client(name)
    try:
        container.create_container()
    except ResourceExistsError:
        pass
    except AzureError as exc:
        raise StorageError(f"cannot create container {name}: {_short(exc)}") from None
    return container


@dataclass(frozen=True)
class BlobLocation:
    """A v4 blob location: URL = ``base_location + relative_location + sas_token``.

    ``sas_token`` is a secret: it is left out of ``repr`` and never logged or returned.
    """

    base_location: str
    relative_location: str
    sas_token: str

    def __repr__(self) -> str:
        return f"BlobLocation({self.base_location + self.relative_location!r}, sas_token=***)"

    def to_dict(self) -> dict[str, str]:
        """The v4 submit body's location object (holds the token: send, never store)."""
        return {"authenticationType": "PublicOrSas", "baseLocation": self.base_location,
                "relativeLocation": self.relative_location, "sasBlobToken": self.sas_token}


def sas_expiry(job_timeout_minutes: float, now: datetime | None = None) -> datetime:
    """Expiry of a job's SAS tokens: the job timeout plus a margin, from ``now``."""
    now = now or datetime.now(UTC)
    return now + timedelta(minutes=job_timeout_minutes) + SAS_MARGIN


class SasReuse:
    """A chunk's SAS locations, minted once and reused by its busy retries (in memory only).

    A retry may reuse a set only while the first attempt's chunk could still be running: the
    chunk orchestrator gives a job up ``JOB_TIMEOUT_MINUTES`` after the chunk started, which
    is no later than ``first mint + JOB_TIMEOUT_MINUTES``, and the set expires ``SAS_MARGIN``
    after that. Past that window (another run of the same blobs) a new set is minted. An
    accepted submit calls :meth:`forget`, so a later submit never hands the same set out again.
    """

    MAX_ENTRIES = 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sets: dict[tuple[str, ...], tuple[datetime, Any]] = {}

    def get(self, key: tuple[str, ...], job_timeout_minutes: float,
            mint: Any, now: datetime | None = None) -> Any:
        """The set for ``key``: reused when minted less than the job timeout ago, else
        ``mint(expiry)`` with ``expiry`` from :func:`sas_expiry`."""
        now = now or datetime.now(UTC)
        window = timedelta(minutes=job_timeout_minutes)
        with self._lock:
            for stale in [k for k, (at, _) in self._sets.items() if now - at >= window]:
                del self._sets[stale]
            found = self._sets.get(key)
            if found is not None:
                return found[1]
        made = mint(sas_expiry(job_timeout_minutes, now))
        with self._lock:
            if len(self._sets) >= self.MAX_ENTRIES:
                self._sets.pop(next(iter(self._sets)))
            self._sets[key] = (now, made)
        return made

    def forget(self, key: tuple[str, ...]) -> None:
        """Drop the set of ``key`` (its job was accepted: the service holds the tokens now)."""
        with self._lock:
            self._sets.pop(key, None)


def sas_location(blob: BlobClient, permission: str, expiry: datetime,
                 service: BlobServiceClient | None = None) -> BlobLocation:
    """A SAS location for one blob, valid until ``expiry``.

    Parameters
    ----------
    blob : BlobClient
        The blob the job reads or writes.
    permission : str
        ``"r"`` for an input, ``"cw"`` for an output or error blob.
    expiry : datetime
        When the token stops working (see :func:`sas_expiry`).
    service : BlobServiceClient, optional
        Needed for a user-delegation SAS (identity-based connection).
    """
    start = datetime.now(UTC) - SAS_CLOCK_SKEW
    perms = BlobSasPermissions.from_string(permission)
    credential = blob.credential
    account_key = getattr(credential, "account_key", None)
    # A BlobClient made from a container of an IP-style endpoint (Azurite, private endpoints:
    # https://host/account/container) names its account "account/container"; the service
    # client names it right, and the signature covers it.
    account = str(service.account_name if service is not None else blob.account_name)
    try:
        if account_key:
            token = generate_blob_sas(account, blob.container_name, blob.blob_name,
                                      account_key=account_key, permission=perms, expiry=expiry,
                                      start=start, protocol=_protocol(blob.url))
        else:
            if service is None:
                raise StorageError("a user-delegation SAS needs the blob service client.")
            delegation = service.get_user_delegation_key(start, expiry)
            token = generate_blob_sas(account, blob.container_name, blob.blob_name,
                                      user_delegation_key=delegation, permission=perms,
                                      expiry=expiry, start=start, protocol=_protocol(blob.url))
    except AzureError as exc:
        raise StorageError(f"cannot create a SAS for {blob.blob_name}: {_short(exc)}") from None
    base = blob.url[: blob.url.index(f"/{blob.container_name}/")] + "/"
    relative = f"{blob.container_name}/{quote(blob.blob_name, safe='/')}"
    return BlobLocation(base_location=base, relative_location=relative, sas_token="?" + token)


def _protocol(url: str) -> str:
    # Azurite speaks plain http; a real account gets https-only tokens.
    return "https" if url.startswith("https:") else "https,http"


class BlobReader(io.RawIOBase):
    """A read-only binary stream over a blob, fetched in 1 MiB ranges (never whole).

    Every range is read with ``If-Match`` on the ETag seen at open, so a blob replaced while
    it is read fails the read instead of mixing two versions.

    Parameters
    ----------
    blob : BlobClient
    etag : str, optional
        Read exactly this version; a different one fails with :class:`InputError`.
    """

    def __init__(self, blob: BlobClient, etag: str | None = None) -> None:
        super().__init__()
        self._blob = blob
        self.name = blob.blob_name
        try:
            props = blob.get_blob_properties(**_if_match(etag))
        except ResourceNotFoundError:
            raise StorageError(f"blob {blob.blob_name} does not exist.") from None
        except ResourceModifiedError:
            raise InputError(f"blob {blob.blob_name} changed since the run started "
                             "(its ETag differs).") from None
        except AzureError as exc:
            raise StorageError(f"cannot read blob {blob.blob_name}: {_short(exc)}") from None
        self.size = int(props.size)
        self.etag = str(props.etag).strip('"')
        self._offset = 0
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._pending:
            if self._offset >= self.size:
                return 0
            data = self._next_range()
            self._offset += len(data)
            self._pending = memoryview(data)
        view = memoryview(buffer).cast("B")
        count = min(len(view), len(self._pending))
        view[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def _next_range(self) -> bytes:
        return self._range(self._offset, min(READ_RANGE, self.size - self._offset))

    def _range(self, offset: int, length: int) -> bytes:
        try:
            data = self._blob.download_blob(offset=offset, length=length,
                                            **_if_match(self.etag)).readall()
        except ResourceModifiedError:
            raise InputError(f"blob {self.name} changed while it was read.") from None
        except AzureError as exc:
            raise StorageError(f"cannot read blob {self.name}: {_short(exc)}") from None
        if len(data) != length:
            raise StorageError(f"blob {self.name} ended early at byte {offset + len(data):,}.")
        return bytes(data)


class ReadAheadBlobReader(BlobReader):
    """A :class:`BlobReader` that keeps the next ``ahead`` ranges downloading in threads.

    For a whole-blob sequential read (``prepare_batch``): the parser works on one range
    while the next ones arrive, so reading costs little more than the slower of the two.
    Memory: ``ahead`` ranges of ``range_size`` more (larger ranges than :class:`BlobReader`'s:
    fewer requests, and no hashing in Azurite, see :data:`READ_AHEAD_RANGE`).
    """

    def __init__(self, blob: BlobClient, etag: str | None = None, ahead: int = 4,
                 range_size: int = READ_AHEAD_RANGE) -> None:
        super().__init__(blob, etag)
        self._ahead = ahead
        self._range_size = range_size
        self._pool = ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="blob-read")
        self._inflight: deque[Future[bytes]] = deque()
        self._requested = 0

    def _next_range(self) -> bytes:
        while len(self._inflight) < self._ahead and self._requested < self.size:
            length = min(self._range_size, self.size - self._requested)
            self._inflight.append(self._pool.submit(self._range, self._requested, length))
            self._requested += length
        return self._inflight.popleft().result()

    def close(self) -> None:
        for future in self._inflight:
            future.cancel()
        self._inflight.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
        super().close()


def _if_match(etag: str | None) -> dict[str, Any]:
    if not etag:
        return {}
    from azure.core import MatchConditions

    return {"etag": f'"{etag.strip(chr(34))}"', "match_condition": MatchConditions.IfNotModified}


def ensure_current(blob: BlobClient, etag: str) -> None:
    """Raise :class:`SupersededError` unless ``blob`` still is the version ``etag`` names.

    Called before a run writes to its output folder: that folder is named after the input
    blob, so a newer upload of the same blob (a new ETag, a new run) or a deleted blob hands
    it over to that newer run. One ``get_blob_properties``; the blob is never modified.
    """
    try:
        current = str(blob.get_blob_properties().etag).strip('"')
    except ResourceNotFoundError:
        raise SupersededError(f"input blob {blob.blob_name} was deleted; the run writes no "
                              "output.") from None
    except AzureError as exc:
        raise StorageError(f"cannot read blob {blob.blob_name}: {_short(exc)}") from None
    if current != etag.strip('"'):
        raise SupersededError(f"input blob {blob.blob_name} was replaced by a newer upload; "
                              "the newer upload's run owns the output folder.")


def open_reader(blob: BlobClient, etag: str | None = None) -> io.BufferedReader:
    """A buffered binary reader over a blob (``read``, ``readline``); see :class:`BlobReader`."""
    # BlobReader already holds one range; a small buffer only serves readline().
    return io.BufferedReader(BlobReader(blob, etag), buffer_size=64 * 1024)


def open_reader_if_exists(blob: BlobClient, read_ahead: int = 0) -> io.BufferedReader | None:
    """Like :func:`open_reader`, but ``None`` when the blob does not exist.

    ``read_ahead`` > 0 keeps that many :data:`READ_AHEAD_RANGE` ranges downloading while the
    caller reads (:class:`ReadAheadBlobReader`), for whole-blob sequential reads of large blobs.
    """
    try:
        if read_ahead:
            return io.BufferedReader(ReadAheadBlobReader(blob, None, read_ahead),
                                     buffer_size=64 * 1024)
        return open_reader(blob)
    except StorageError:
        if not exists(blob):
            return None
        raise


class BlobWriter(io.RawIOBase):
    """A write-only stream that uploads a block blob in 4 MiB blocks, computing size and MD5.

    The blob appears (replacing any old one) only at :meth:`close`, when the block list is
    committed; :meth:`abort` leaves it untouched. Memory holds at most one block.
    """

    def __init__(self, blob: BlobClient, content_type: str = "application/octet-stream") -> None:
        super().__init__()
        self._blob = blob
        self._content_type = content_type
        self._buffer = bytearray()
        self._blocks: list[str] = []
        self._md5 = hashlib.md5()  # noqa: S324 - content checksum, not security
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._buffer += chunk
        self._md5.update(chunk)
        self.size += len(chunk)
        if len(self._buffer) >= BLOCK_SIZE:
            self._stage()
        return len(chunk)

    def _stage(self) -> None:
        block_id = base64.b64encode(uuid.uuid4().hex.encode()).decode()
        try:
            self._blob.stage_block(block_id, bytes(self._buffer), **STAGE_OPTIONS)
        except AzureError as exc:
            raise StorageError(f"cannot write blob {self._blob.blob_name}: "
                               f"{_short(exc)}") from None
        self._blocks.append(block_id)
        self._buffer.clear()

    @property
    def md5_base64(self) -> str:
        """Base64 MD5 of everything written (the form Azure shows as Content-MD5)."""
        return base64.b64encode(self._md5.digest()).decode()

    def abort(self) -> None:
        """Close without committing: the blob stays as it was (staged blocks are dropped)."""
        self._buffer.clear()
        super().close()

    def close(self) -> None:
        # IOBase.__del__ calls close(): a writer abandoned by an exception must be aborted
        # first, or collecting it would commit a partial blob.
        if self.closed:
            return
        if self._buffer or not self._blocks:
            self._stage()
        try:
            self._blob.commit_block_list(
                [BlobBlock(block_id=block) for block in self._blocks],
                content_settings=ContentSettings(content_type=self._content_type,
                                                 content_md5=bytearray(self._md5.digest())))
        except AzureError as exc:
            raise StorageError(f"cannot write blob {self._blob.blob_name}: "
                               f"{_short(exc)}") from None
        super().close()


def upload_bytes(blob: BlobClient, data: bytes, content_type: str) -> None:
    """Upload (overwrite) a small blob."""
    try:
        blob.upload_blob(data, overwrite=True,
                         content_settings=ContentSettings(content_type=content_type))
    except AzureError as exc:
        raise StorageError(f"cannot write blob {blob.blob_name}: {_short(exc)}") from None


def download_bytes(blob: BlobClient) -> bytes | None:
    """The whole content of a small blob, or ``None`` when it does not exist."""
    try:
        return bytes(blob.download_blob().readall())
    except ResourceNotFoundError:
        return None
    except AzureError as exc:
        raise StorageError(f"cannot read blob {blob.blob_name}: {_short(exc)}") from None


def exists(blob: BlobClient) -> bool:
    """True when the blob exists."""
    try:
        return bool(blob.exists())
    except AzureError as exc:
        raise StorageError(f"cannot check blob {blob.blob_name}: {_short(exc)}") from None


def _short(exc: Exception) -> str:
    # azure-core messages span many lines (headers, XML); the first says what failed. Request
    # URLs may carry a SAS, so any query string is cut.
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return safe_text(first.split("?", 1)[0], 200)  # redacts (e.g. an encoded sig%3D) first


safe_error = _short  # the same, for other modules that report storage failures


def delete_if_exists(blob: BlobClient) -> None:
    """Delete a blob; a missing blob is fine."""
    try:
        blob.delete_blob()
    except ResourceNotFoundError:
        pass
    except AzureError as exc:
        raise StorageError(f"cannot delete blob {blob.blob_name}: {_short(exc)}") from None
