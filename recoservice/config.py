"""recoservice settings, from the command line into one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_ALLOWED_BLOB_HOSTS = ("127.0.0.1", "localhost", "::1", "*.blob.core.windows.net")
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
                f"allowed_blob_hosts={self.allowed_blob_hosts!r}, demo={self.demo})")
