"""recoservice settings, from the command line into one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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

    @property
    def base_dir(self) -> Path:
        return self.state_dir

    def __repr__(self) -> str:
        # Keys stay out of reprs so a logged config cannot leak them.
        return (f"Config(state_dir={str(self.state_dir)!r}, keys=<{len(self.keys)} hidden>, "
                f"admin_keys=<{len(self.admin_keys)} hidden>, faults={self.faults}, "
                f"allowed_blob_hosts={self.allowed_blob_hosts!r}, demo={self.demo})")
