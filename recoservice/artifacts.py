"""Where built models and imported usage files are kept: a local folder, or a blob container.

recoservice writes every artifact (``builds/*.npz``, ``usage/*.npz``) to its local state
folder first. With ``--artifacts`` it also uploads it to a blob container, under the same
relative name, before the record that points at it is committed; a replica that finds the file
missing locally downloads it once and keeps it (the folder is then a cache). Without it,
``LocalArtifacts`` keeps the folder as the only copy (one process, or one shared folder).

``--artifacts https://ACCOUNT.blob.core.windows.net/CONTAINER`` signs in with
``DefaultAzureCredential`` (the managed identity in ``AZURE_CLIENT_ID``);
``RECOSERVICE_ARTIFACTS_CONNECTION`` (a connection string, environment only since it may hold
an account key) with ``--artifacts-container`` (default ``reco-artifacts``) suits Azurite.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

log = logging.getLogger("recoservice")

DEFAULT_CONTAINER = "reco-artifacts"


class Artifacts:
    """Local folder only: the file is the artifact (``publish``/``fetch`` do nothing)."""

    def publish(self, name: str, path: Path) -> None:
        """Keep the file ``path`` (written locally) as the artifact ``name``."""

    def fetch(self, name: str, path: Path) -> Path:
        """``path``, downloaded first when it is missing here; ``FileNotFoundError`` if the
        artifact exists nowhere."""
        if not path.exists():
            raise FileNotFoundError(f"artifact {name} is missing")
        return path

    def delete(self, name: str) -> None:
        """Forget the artifact (the local file is removed by the caller)."""

    def describe(self) -> str:
        return "local folder"


LocalArtifacts = Artifacts


class BlobArtifacts(Artifacts):
    """Artifacts in a blob container; the local folder caches them.

    Parameters
    ----------
    container
        An ``azure.storage.blob.ContainerClient``; the container is created when missing.
    """

    def __init__(self, container) -> None:  # noqa: ANN001 - azure type, imported lazily
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        self.container = container
        try:
            # A read first: a role on the container alone (as the azd template grants) may
            # read it but not create containers.
            container.get_container_properties(timeout=30)
        except ResourceNotFoundError:
            try:
                container.create_container(timeout=30)
            except ResourceExistsError:
                pass  # another replica created it meanwhile
        self._lock = threading.Lock()

    def publish(self, name: str, path: Path) -> None:
        with path.open("rb") as stream:
            self.container.upload_blob(name, stream, overwrite=True, timeout=600)

    def fetch(self, name: str, path: Path) -> Path:
        from azure.core.exceptions import ResourceNotFoundError

        if path.exists():
            return path
        with self._lock:  # one download of a file at a time; the others wait for it
            if path.exists():
                return path
            part = path.with_name(path.name + f".{os.getpid()}.part")
            try:
                with part.open("wb") as stream:
                    self.container.download_blob(name, timeout=600).readinto(stream)
            except ResourceNotFoundError:
                part.unlink(missing_ok=True)
                raise FileNotFoundError(f"artifact {name} is missing") from None
            part.replace(path)  # atomic: a reader never sees half a file
            log.info("artifact %s downloaded", name)
        return path

    def delete(self, name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.container.delete_blob(name, timeout=60)
        except ResourceNotFoundError:
            pass

    def describe(self) -> str:
        return f"blob container {self.container.url}"


def open_artifacts(url: str | None, connection_string: str | None = None,
                   container: str = DEFAULT_CONTAINER) -> Artifacts:
    """The artifact store the options name: a container URL (identity), a connection string
    and container name, or neither (the local folder)."""
    if connection_string:
        from azure.storage.blob import ContainerClient

        return BlobArtifacts(ContainerClient.from_connection_string(
            connection_string, container, connection_timeout=20, read_timeout=600))
    if url:
        from azure.identity import DefaultAzureCredential
        from azure.storage.blob import ContainerClient

        credential = DefaultAzureCredential(
            managed_identity_client_id=os.environ.get("AZURE_CLIENT_ID") or None)
        return BlobArtifacts(ContainerClient.from_container_url(
            url, credential=credential, connection_timeout=20, read_timeout=600))
    return Artifacts()
