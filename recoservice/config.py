"""recoservice settings, from the command line into one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# Azure Storage only. Loopback (Azurite) and any other host must be allowed explicitly with
# --allow-blob-host: a batch job's URLs come from callers, and the service must not become
# their way into its own network.
DEFAULT_ALLOWED_BLOB_HOSTS = ("*.blob.core.windows.net",)
# Upload caps: big enough for real catalogs (v4 allowed 200 MB catalogs), small enough to keep
# one request from exhausting memory, since the body is held while it is parsed.
DEFAULT_MAX_CATALOG_BYTES = 200 * 1024 * 1024
DEFAULT_MAX_USAGE_BYTES = 500 * 1024 * 1024


@dataclass(frozen=True)
class Config:
    """How one recoservice runs.

    Attributes
    ----------
    state_dir
        Where the SQLite database and built models live (the base dir of the service).
    keys
        Valid subscription keys (``Ocp-Apim-Subscription-Key``); never logged.
    allowed_blob_hosts
        fnmatch-style host patterns batch jobs may read from and write to.
    admin_keys
        Keys of the admin routes (``Recoservice-Admin-Key``); never logged.
    faults
        Mount the fault routes ``/admin/faults`` (``--faults``); off by default.
    faults_file
        JSON fault rules loaded at start (see ``recoservice.faults``), or ``None``.
    demo
        Ensure the ``demo`` model exists (see ``recoservice.demo``).
    max_catalog_bytes, max_usage_bytes
        Upload body caps; larger bodies get ``413``.
    database
        ``sqlite:///PATH`` or ``postgresql://...`` (``None``: ``STATE_DIR/recoservice.db``);
        see ``recoservice.database``.
    artifacts_url
        Blob container URL for builds and usage files (identity sign-in), or ``None``.
    artifacts_connection
        Connection string of the artifacts' storage account (from the environment only;
        never shown), used with ``artifacts_container``.
    lease_seconds
        How long an operation outlives a replica that stopped renewing its lease.
    """

    state_dir: Path
    keys: list[str]
    allowed_blob_hosts: list[str] = field(
        default_factory=lambda: list(DEFAULT_ALLOWED_BLOB_HOSTS))
    admin_keys: list[str] = field(default_factory=list)
    faults: bool = False
    faults_file: Path | None = None
    demo: bool = False
    max_catalog_bytes: int = DEFAULT_MAX_CATALOG_BYTES
    max_usage_bytes: int = DEFAULT_MAX_USAGE_BYTES
    database: str | None = None
    artifacts_url: str | None = None
    artifacts_connection: str | None = None
    artifacts_container: str = "reco-artifacts"
    lease_seconds: float = 30.0

    @property
    def base_dir(self) -> Path:
        return self.state_dir

    def __repr__(self) -> str:
        # Keys stay out of reprs so a logged config cannot leak them.
        return (f"Config(state_dir={str(self.state_dir)!r}, keys=<{len(self.keys)} hidden>, "
                f"admin_keys=<{len(self.admin_keys)} hidden>, faults={self.faults}, "
                f"allowed_blob_hosts={self.allowed_blob_hosts!r}, demo={self.demo}, "
                f"database={_redact_url(self.database)!r}, "
                f"artifacts={self._artifacts_shown()!r}, "
                f"lease_seconds={self.lease_seconds})")

    def _artifacts_shown(self) -> str | None:
        return self.artifacts_url or ("<connection string>" if self.artifacts_connection
                                      else None)


def _redact_url(url: str | None) -> str | None:
    """A database URL without its password (if the environment gave one)."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
