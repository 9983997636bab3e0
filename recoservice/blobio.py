"""Blob locations of batch jobs: parse, check the host, read and write with a SAS URL.

A location is the v4 ``{"authenticationType": "PublicOrSas", "baseLocation",
"relativeLocation", "sasBlobToken"}`` object; its URL is ``baseLocation + relativeLocation +
sasBlobToken``. ``azure.storage.blob.BlobClient.from_blob_url`` talks to it, so the same code
works against Azurite and Azure. SAS tokens never leave this module in a message or a listing.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import socket
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from azure.core.exceptions import AzureError
from azure.storage.blob import BlobBlock, BlobClient, ContentSettings
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

# The hosted service's documented input limit (2 MB).
MAX_INPUT_BYTES = 2_097_152
# Output is uploaded in blocks of about this size, so it never sits in memory whole, by this
# many threads at once (while the job encodes the next blocks).
BLOCK_BYTES = 4 * 1024 * 1024
UPLOAD_THREADS = 3
# Each block is sent with its MD5 (Content-MD5): storage verifies it, and Azurite then skips
# the CRC64 it otherwise computes in JavaScript for every staged block (most of its CPU when
# a job writes ~100 MB; see bench/README.md).
_STAGE_OPTIONS: dict[str, Any] = {"validate_content": True}
REDACTED = "***"
# Fail fast on a dead host instead of azure-core's default long retry chain; never follow a
# redirect (it could lead to a host the allow-list never saw).
_CLIENT_OPTIONS: dict[str, Any] = {"connection_timeout": 10, "read_timeout": 60, "retry_total": 2,
                                   "permit_redirects": False}


class BlobIOError(Exception):
    """A blob could not be read or written; the message is safe to show (no SAS token)."""


class InputTooLargeError(BlobIOError):
    """The input blob is larger than ``MAX_INPUT_BYTES``."""

    def __init__(self, size: int) -> None:
        super().__init__(
            f"Input blob is {size:,} bytes, larger than the {MAX_INPUT_BYTES:,}-byte (2 MB) limit."
        )
        self.size = size


@dataclass(frozen=True)
class BlobLocation:
    """Where a batch job reads or writes one blob (built only by ``parse_location``).

    ``scheme``, ``netloc`` (canonical host, ``:port`` when given) and ``base_path`` are the
    checked parts of ``baseLocation``; every URL the job uses is rebuilt from them, so the
    host checked is the host connected to.
    """

    base_location: str
    relative_location: str
    sas_token: str
    scheme: str = "https"
    host: str = ""
    netloc: str = ""
    base_path: str = "/"

    @property
    def url_without_token(self) -> str:
        return (f"{self.scheme}://{self.netloc}{self.base_path.rstrip('/')}/"
                f"{self.relative_location.lstrip('/')}")

    @property
    def url(self) -> str:
        return self.url_without_token + self.sas_token

    def redacted(self) -> dict[str, str]:
        """The location as the API echoes it: the SAS token replaced by ``***``."""
        return {
            "authenticationType": "PublicOrSas",
            "baseLocation": self.base_location,
            "relativeLocation": self.relative_location,
            "sasBlobToken": REDACTED,
        }

    def scrub(self, text: str) -> str:
        """Remove this location's SAS token (and its query part) from ``text``."""
        for secret in (self.sas_token, self.sas_token.lstrip("?")):
            if len(secret) > 1:
                text = text.replace(secret, REDACTED)
        return text


# -- URL checks ----------------------------------------------------------------------------
# A location is refused unless it is spelled so plainly that every parser agrees on its
# host: ``urllib.parse`` (which azure-storage-blob uses to split the blob URL) and urllib3's
# ``parse_url`` (which requests, azure-core's transport, uses to pick the host it connects
# to). The check runs on the host urllib3 reports, the host the socket will reach.

# Limits on a location's parts (a real SAS URL is a few hundred characters).
MAX_BASE_CHARS = 2048
MAX_RELATIVE_CHARS = 1024
MAX_TOKEN_CHARS = 4096
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_DOTTED_QUAD = re.compile(r"(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}")


def _printable(text: str, allow_space: bool = False) -> bool:
    low = 32 if allow_space else 33
    return all(low <= ord(c) < 127 for c in text) and "\\" not in text


def canonical_host(host: str) -> str | None:
    """The host in its one canonical spelling, or ``None`` when it has another reading.

    Accepted: a dotted-quad IPv4 address without leading zeros, a bracketed IPv6 address
    (not IPv4-mapped), or a DNS name of letter-digit-hyphen labels without a trailing dot
    whose last label is not all digits. Everything else (``2130706434``, ``0177.0.0.1``,
    ``0x7f000001``, ``127.1``, ``host.``, ``[::ffff:127.0.0.1]``, ``%``-escapes) is refused:
    resolvers read such spellings as addresses the allow-list never saw.
    """
    host = host.lower()
    if host.startswith("[") and host.endswith("]"):
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return None
        if address.ipv4_mapped is not None or address.scope_id:
            return None
        return f"[{address.compressed}]"
    if _DOTTED_QUAD.fullmatch(host):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            return None
    try:
        socket.inet_aton(host)   # inet_aton reads "0x7f000001", "127.1", "017700000001"...
        return None
    except OSError:
        pass
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels) \
            or labels[-1].isdigit():
        return None
    return host


def _split_base(base: str, field: str) -> tuple[str, str, str, str]:
    """(scheme, canonical host, netloc, path) of ``baseLocation``; ``ValueError`` if unsafe."""
    wrong = ValueError(f"{field}.baseLocation must be a plain http(s) URL "
                       "(scheme://host[:port]/path)")
    if len(base) > MAX_BASE_CHARS or not _printable(base) or "@" in base:
        raise wrong
    try:
        parsed = parse_url(base)
    except LocationParseError:
        raise wrong from None
    plain = urlsplit(base)
    if parsed.scheme not in ("http", "https") or plain.scheme.lower() != parsed.scheme \
            or parsed.auth or parsed.query is not None or parsed.fragment is not None \
            or not parsed.host:
        raise wrong
    host = canonical_host(parsed.host)
    # Both parsers must name the same host and port, spelled the same way as written.
    try:
        plain_port = plain.port
    except ValueError:
        raise wrong from None
    if host is None or (plain.hostname or "") != parsed.host.lower().strip("[]") \
            or plain_port != parsed.port or plain.netloc.lower() != (
                parsed.host.lower() + (f":{parsed.port}" if parsed.port is not None else "")):
        raise wrong
    netloc = host + (f":{parsed.port}" if parsed.port is not None else "")
    return parsed.scheme, host.strip("[]"), netloc, parsed.path or "/"


def parse_location(raw: Any, field: str) -> BlobLocation:
    """Validate one location object; raise ``ValueError`` naming the field that is wrong."""
    if not isinstance(raw, dict):
        raise ValueError(f"{field} is missing or not an object")
    if raw.get("authenticationType") != "PublicOrSas":
        raise ValueError(f"{field}.authenticationType must be PublicOrSas")
    base = raw.get("baseLocation")
    if not isinstance(base, str) or not base:
        raise ValueError(f"{field}.baseLocation is missing")
    scheme, host, netloc, path = _split_base(base, field)
    relative = raw.get("relativeLocation")
    if not isinstance(relative, str) or not relative.strip("/"):
        raise ValueError(f"{field}.relativeLocation is missing")
    if len(relative) > MAX_RELATIVE_CHARS or not _printable(relative, allow_space=True) \
            or any(c in relative for c in "?#"):
        raise ValueError(f"{field}.relativeLocation must be <container>/<blob name> without "
                         "'?', '#', '\\' or control characters")
    if "/" not in relative.strip("/"):
        raise ValueError(f"{field}.relativeLocation must be <container>/<blob name>")
    token = raw.get("sasBlobToken", "")
    if token is None:
        token = ""
    if not isinstance(token, str) or (token and not token.startswith("?")):
        raise ValueError(f"{field}.sasBlobToken must start with '?'")
    if len(token) > MAX_TOKEN_CHARS or not _printable(token) or "#" in token:
        raise ValueError(f"{field}.sasBlobToken holds characters a SAS token never has")
    location = BlobLocation(base_location=base, relative_location=relative, sas_token=token,
                            scheme=scheme, host=host, netloc=netloc, base_path=path)
    # The whole URL, as the HTTP client will parse it, must still point at the checked host.
    full = parse_url(location.url)
    if full.host is None or full.host.lower().strip("[]") != host or full.auth \
            or urlsplit(location.url).hostname != host:
        raise ValueError(f"{field}: the blob URL does not keep the host of baseLocation")
    return location


def host_allowed(host: str, patterns: list[str]) -> bool:
    """True when ``host`` matches one of the fnmatch-style ``patterns`` (case-insensitive)."""
    host = host.lower().strip("[]")
    return any(fnmatch.fnmatchcase(host, pattern.lower().strip("[]")) for pattern in patterns)


def _client(location: BlobLocation) -> BlobClient:
    return BlobClient.from_blob_url(location.url, **_CLIENT_OPTIONS)


def read_input(location: BlobLocation, max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """Download the input blob, refusing it when it is larger than ``max_bytes``.

    Raises
    ------
    InputTooLargeError
        When the blob is over the limit (checked before downloading, and again after).
    BlobIOError
        When storage answers with an error.
    """
    client = _client(location)
    try:
        size = int(client.get_blob_properties().size)
        if size > max_bytes:
            raise InputTooLargeError(size)
        data = client.download_blob().readall()
    except AzureError as exc:
        raise BlobIOError(
            f"Cannot read input blob {location.url_without_token}: "
            + location.scrub(_short(exc))
        ) from None
    # The blob may have grown between the two calls.
    if len(data) > max_bytes:
        raise InputTooLargeError(len(data))
    return bytes(data)


def write_blob(location: BlobLocation, data: bytes, content_type: str) -> None:
    """Upload ``data`` (overwriting) to the location."""
    try:
        _client(location).upload_blob(
            data, overwrite=True, content_settings=ContentSettings(content_type=content_type)
        )
    except AzureError as exc:
        raise BlobIOError(
            f"Cannot write blob {location.url_without_token}: " + location.scrub(_short(exc))
        ) from None


class BlockWriter:
    """Write a blob in staged blocks; it appears only on ``close()`` (all or nothing).

    Blocks are staged by ``UPLOAD_THREADS`` threads while the caller goes on producing the
    next ones (at most ``UPLOAD_THREADS + 1`` blocks are in flight, so memory stays bounded);
    ``close()`` waits for them and commits the list in order. A job cancelled or failed
    half-way calls ``abort()`` and leaves no blob, only uncommitted blocks that storage
    discards on its own.
    """

    def __init__(self, location: BlobLocation, content_type: str) -> None:
        self._location = location
        self._client = _client(location)
        self._content_type = content_type
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._blocks: list[BlobBlock] = []
        self._pool = ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="blob-upload")
        self._pending: list[Future[Any]] = []

    def write(self, data: bytes) -> None:
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered >= BLOCK_BYTES:
            self._stage()

    def close(self) -> None:
        """Stage what is left, wait for every block and commit them as the blob's content."""
        try:
            self._stage()
            self._wait(0)
            self._client.commit_block_list(
                self._blocks, content_settings=ContentSettings(content_type=self._content_type))
        except AzureError as exc:
            raise self._error(exc) from None
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def abort(self) -> None:
        """Stop staging (nothing is committed, so no blob appears)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _stage(self) -> None:
        if not self._buffer:
            return
        # Same-length ids, as the Blob service requires within one blob.
        block_id = f"{len(self._blocks):08d}"
        data = b"".join(self._buffer)
        self._buffer, self._buffered = [], 0
        self._blocks.append(BlobBlock(block_id=block_id))
        self._wait(UPLOAD_THREADS)
        self._pending.append(self._pool.submit(self._client.stage_block, block_id, data,
                                                **_STAGE_OPTIONS))

    def _wait(self, most: int) -> None:
        """Wait until at most ``most`` blocks are still being staged; raise the first error."""
        while len(self._pending) > most:
            try:
                self._pending.pop(0).result()
            except AzureError as exc:
                self.abort()
                raise self._error(exc) from None

    def _error(self, exc: AzureError) -> BlobIOError:
        return BlobIOError(f"Cannot write blob {self._location.url_without_token}: "
                           + self._location.scrub(_short(exc)))


def _short(exc: AzureError) -> str:
    # azure-core messages can span many lines (headers, XML body); the first says what failed.
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return first[:300]
