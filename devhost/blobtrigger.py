"""Blob triggers, both sources of the host's blobs extension, found by listing Azurite.

What the host does (Azure/azure-sdk-for-net, ``Microsoft.Azure.WebJobs.Extensions.Storage.Blobs``:
``Listeners/ScanBlobScanLogHybridPollingStrategy.cs``, ``BlobReceiptManager.cs``,
``BlobQueueTriggerExecutor.cs``; docs "Azure Blob storage trigger", "Event Grid blob trigger"):

- ``LogsAndContainerScan`` (the default): the container is scanned; every (container, blob,
  ETag) without a receipt in the store is queued once, existing blobs included when the host
  starts; a re-upload (new ETag) fires again; receipts survive restarts.
- ``EventGrid``: the host polls nothing; Event Grid posts ``Microsoft.Storage.BlobCreated`` to
  the ``/runtime/webhooks/blobs`` webhook, and each event is queued once. Blobs that existed
  before the subscription never fire. Azurite emits no events, so devhost finds the new blob
  versions by listing and delivers each once: the first start of a function records every blob
  already there as "before the subscription" (receipt ``preexisting``), and any later version
  is one event.
- Both then run the host's queue step (``BlobQueueTriggerExecutor``): a blob deleted meanwhile
  is skipped (logged, no invocation, no retry); with ``LogsAndContainerScan`` a blob replaced
  meanwhile is skipped too (its new version fires itself); with ``EventGrid`` it is invoked.
  A failing invocation is retried on the next polls, 5 attempts in all (``maxDequeueCount``);
  then the version is poison (receipt ``poison``, logged), a message like the host's goes to
  queue ``webjobs-blobtrigger-poison`` (base64 JSON: ``Type``, ``FunctionId``, ``BlobType``,
  ``ContainerName``, ``BlobName``, ``ETag``; best effort) and it is never retried.

What the function gets, as the Python worker builds it:

- SDK-type binding (the raw binding has ``"properties": {"SupportsDeferredBinding": true}``,
  e.g. ``blob: blob.BlobClient`` from ``azurefunctions-extensions-bindings-blob``): the host sends
  model binding data (version ``1.0``, source ``AzureStorageBlobs``, content type
  ``application/json``, content ``{"Connection", "ContainerName", "BlobName"}``) and the worker
  passes it to the extension's converter (``BlobClientConverter.decode``), which makes the
  client from the connection setting. devhost calls that same converter. No byte of the blob
  is read.
- otherwise an ``azure.functions.InputStream`` with the whole content (what the host sends for
  ``func.InputStream``): ``name`` = ``"container/blob"``, ``uri`` (no SAS token), ``length``,
  ``blob_properties`` (``ETag`` quoted as in HTTP, ``ContentLength``, ``ContentType``,
  ``LastModified``, ``ContentMD5``, ``BlobType``) and ``metadata``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.functions.blob import InputStream
from azure.storage.blob import BlobProperties, BlobServiceClient
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devhost.durable.store import Store
from devhost.indexer import FunctionInfo, deferred_registry, invoke

log = logging.getLogger("devhost.blob")

MAX_ATTEMPTS = 5
POISON_QUEUE = "webjobs-blobtrigger-poison"
EVENT_GRID = "EventGrid"
SCAN = "LogsAndContainerScan"
DEFAULT_CONNECTION = "AzureWebJobsStorage"


def resolve(text: str) -> str:
    """Replace ``%SETTING%`` with the app setting's value (fails naming a missing setting)."""
    def setting(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise KeyError(f"app setting '{name}' (used in a blob trigger path) is not set")
        return os.environ[name]

    return re.sub(r"%([^%]+)%", setting, text)


@dataclass
class BlobPath:
    """A trigger path split into the container, the listing prefix and a name pattern."""

    container: str
    prefix: str
    pattern: re.Pattern[str]

    @classmethod
    def parse(cls, path: str) -> BlobPath:
        container, _, rest = resolve(path).partition("/")
        prefix = rest.split("{", 1)[0]
        regex = "".join(
            f"(?P<{part[1:-1]}>.+)" if part.startswith("{") else re.escape(part)
            for part in re.split(r"(\{[^}]+\})", rest) if part)
        return cls(container=container, prefix=prefix, pattern=re.compile(f"^{regex}$"))


def connection_string(setting: str | None) -> str:
    name = setting or DEFAULT_CONNECTION
    value = os.environ.get(name)
    if not value:
        raise KeyError(f"connection setting '{name}' is not set (devhost needs a connection "
                       "string, e.g. Azurite's)")
    return value


def model_binding_data(connection: str, container: str, blob: str) -> Any:
    """The datum the worker receives for an SDK-type blob binding (``TypedData`` of kind
    ``model_binding_data``): a reference to the blob, never its content."""
    from azurefunctions.extensions.base import Datum

    content = json.dumps({"Connection": connection, "ContainerName": container,
                          "BlobName": blob}).encode()
    value = SimpleNamespace(version="1.0", source="AzureStorageBlobs",
                            content_type="application/json", content=content)
    return Datum(value=value, type="model_binding_data")


def sdk_type_argument(info: FunctionInfo, connection: str, container: str, blob: str,
                      metadata: dict[str, Any]) -> Any:
    """What the worker passes for an SDK-type trigger parameter: the extension's converter
    decodes the model binding data into the annotated type (``deferred_bindings_decode``)."""
    from azurefunctions.extensions.base import Datum

    registry = deferred_registry()
    converter = registry.get(info.trigger_type) if registry is not None else None
    if converter is None:
        raise RuntimeError(f"function '{info.name}': no SDK-type converter for "
                           f"'{info.trigger_type}' is loaded")
    trigger_metadata = {key: Datum(value=value, type="string" if isinstance(value, str)
                                   else "json")
                        for key, value in metadata.items()}
    return converter.decode(model_binding_data(connection, container, blob),
                            trigger_metadata=trigger_metadata,
                            pytype=info.pytypes.get(info.arg_name))


class BlobTrigger:
    """Finds one blob-triggered function's new blob versions and invokes the function."""

    def __init__(self, info: FunctionInfo, store: Store, client_binding: str,
                 interval: float = 1.0) -> None:
        self.info = info
        self.client_binding = client_binding  # the durable client JSON, if the function has one
        self.store = store
        self.interval = interval
        self.path = BlobPath.parse(str(info.trigger["path"]))
        self.connection = str(info.trigger.get("connection") or DEFAULT_CONNECTION)
        self.conn = connection_string(self.connection)
        self.service = BlobServiceClient.from_connection_string(self.conn)
        self.source = str(info.trigger.get("source") or SCAN)
        if self.source not in (EVENT_GRID, SCAN):
            raise KeyError(f"function '{info.name}': blob trigger source '{self.source}' is not "
                           f"one of {EVENT_GRID}, {SCAN}")
        self._subscribed = self.source != EVENT_GRID
        if not self._subscribed:
            try:
                self._subscribe()  # before devhost serves: blobs uploaded after its start fire
            except Exception as exc:
                log.warning("blob trigger %s: cannot list %s yet (%s); retrying at the first "
                            "poll", info.name, self.path.container, exc)

    def _subscribe(self) -> None:
        """Event Grid: the subscription starts once; blobs already there never fire."""
        key = f"eventgrid-subscription:{self.info.name}:{self.path.container}"
        if self.store.get_meta(key) is None:
            blobs = self._list()
            with self.store.tx() as db:
                for blob in blobs:
                    db.execute("INSERT OR IGNORE INTO receipts (function, container, blob, etag,"
                               " status, attempts, updated) VALUES (?,?,?,?,?,?,?)",
                               (self.info.name, self.path.container, blob.name, blob.etag,
                                "preexisting", 0, time.time()))
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                           (key, str(time.time())))
            log.info("blob trigger %s: Event Grid source, %d blob(s) already in %s will not "
                     "fire", self.info.name, len(blobs), self.path.container)
        self._subscribed = True

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                if not self._subscribed:
                    await loop.run_in_executor(None, self._subscribe)
                blobs = await loop.run_in_executor(None, self._list)
                for blob in blobs:
                    await self._maybe_fire(blob)
            except Exception as exc:  # storage down for a moment: try again next poll
                log.warning("blob trigger %s: polling failed: %s", self.info.name, exc)
            await asyncio.sleep(self.interval)

    def _list(self) -> list[Any]:
        container = self.service.get_container_client(self.path.container)
        if not container.exists():
            return []
        return [b for b in container.list_blobs(name_starts_with=self.path.prefix or None)
                if self.path.pattern.match(b.name)]

    def _receipt(self, blob: Any) -> Any:
        rows = self.store.query(
            "SELECT * FROM receipts WHERE function=? AND container=? AND blob=? AND etag=?",
            (self.info.name, self.path.container, blob.name, blob.etag))
        return rows[0] if rows else None

    async def _maybe_fire(self, blob: Any) -> None:
        receipt = self._receipt(blob)
        if receipt is not None and receipt["status"] in ("done", "poison", "preexisting",
                                                         "skipped"):
            return
        attempts = int(receipt["attempts"]) if receipt else 0
        loop = asyncio.get_running_loop()
        try:
            argument = await loop.run_in_executor(None, self._argument, blob)
        except ResourceNotFoundError:
            log.info("blob trigger %s: %s/%s no longer exists: skipped", self.info.name,
                     self.path.container, blob.name)
            self._record(blob, "skipped", attempts)
            return
        except ResourceModifiedError:
            # the new version has its own receipt and fires by itself
            log.info("blob trigger %s: %s/%s changed since it was found: this version is "
                     "skipped", self.info.name, self.path.container, blob.name)
            self._record(blob, "skipped", attempts)
            return
        except Exception as exc:  # a binding that cannot be made fails the attempt, as on the host
            argument = exc
        log.info("blob trigger %s fired for %s/%s (%s, attempt %d)", self.info.name,
                 self.path.container, blob.name, self.source, attempts + 1)
        try:
            if isinstance(argument, Exception):
                raise argument
            kwargs: dict[str, Any] = {self.info.arg_name: argument}
            if self.info.client_binding:
                kwargs[self.info.client_binding] = self.client_binding
            await invoke(self.info, kwargs)
            status = "done"
        except Exception as exc:
            attempts += 1
            status = "poison" if attempts >= MAX_ATTEMPTS else "failing"
            log.warning("blob trigger %s failed for %s/%s (attempt %d of %d): %s",
                        self.info.name, self.path.container, blob.name, attempts, MAX_ATTEMPTS,
                        exc)
            if status == "poison":
                log.error("blob %s/%s (ETag %s) is poison for %s after %d attempts: not retried",
                          self.path.container, blob.name, blob.etag, self.info.name, attempts)
                await loop.run_in_executor(None, self._poison, blob)
        self._record(blob, status, attempts)

    def _record(self, blob: Any, status: str, attempts: int) -> None:
        with self.store.tx() as db:
            db.execute("INSERT OR REPLACE INTO receipts (function, container, blob, etag, status,"
                       " attempts, updated) VALUES (?,?,?,?,?,?,?)",
                       (self.info.name, self.path.container, blob.name, blob.etag, status,
                        attempts, time.time()))

    def _argument(self, blob: Any) -> Any:
        """The host's queue step for one blob version, then the function's argument.

        Raises ``ResourceNotFoundError`` (deleted) or ``ResourceModifiedError`` (replaced, with
        the scan source) when the host would skip this version.
        """
        client = self.service.get_blob_client(self.path.container, blob.name)
        if not self.info.deferred:
            return self._stream(client, blob)
        props = client.get_blob_properties()
        if self.source == SCAN and props.etag.strip('"') != blob.etag.strip('"'):
            raise ResourceModifiedError("the blob changed since it was listed")
        uri = client.url.split("?", 1)[0]
        metadata = {"BlobTrigger": f"{self.path.container}/{blob.name}", "Uri": uri,
                    "Properties": json.dumps(_properties(props)),
                    "Metadata": json.dumps(dict(props.metadata or {}))}
        match = self.path.pattern.match(blob.name)
        metadata.update(match.groupdict() if match else {})
        return sdk_type_argument(self.info, self.connection, self.path.container, blob.name,
                                 metadata)

    def _stream(self, client: Any, blob: Any) -> InputStream:
        """Whole content, as the host sends it for a ``func.InputStream`` parameter."""
        pinned = {"etag": blob.etag, "match_condition": _if_match()} if self.source == SCAN else {}
        downloader = client.download_blob(**pinned)
        data = downloader.readall()
        props = downloader.properties
        # the worker's concrete class (func.InputStream is its abstract base)
        # client.url carries the connection's SAS token, if any; the host's Uri never does
        return InputStream(data=data, name=f"{self.path.container}/{blob.name}",
                           uri=client.url.split("?", 1)[0], length=props.size,
                           blob_properties=_properties(props),
                           metadata=dict(props.metadata or {}))

    def _poison(self, blob: Any) -> None:
        """Tell the poison queue, as the host does (best effort: the receipt is what counts)."""
        message = {"Type": "BlobTrigger", "FunctionId": f"Host.Functions.{self.info.name}",
                   "BlobType": "BlockBlob", "ContainerName": self.path.container,
                   "BlobName": blob.name, "ETag": quoted(blob.etag)}
        try:
            queue = QueueClient.from_connection_string(
                self.conn, POISON_QUEUE, message_encode_policy=TextBase64EncodePolicy())
            try:
                queue.create_queue()
            except ResourceExistsError:
                pass
            queue.send_message(json.dumps(message))
        except Exception as exc:
            log.warning("could not write to queue %s: %s", POISON_QUEUE, type(exc).__name__)


def _properties(props: BlobProperties) -> dict[str, Any]:
    """The blob's properties as the host's trigger metadata carries them."""
    md5 = props.content_settings.content_md5
    return {
        "ETag": quoted(props.etag),
        "ContentLength": props.size,
        "Length": props.size,
        "ContentType": props.content_settings.content_type,
        "LastModified": props.last_modified.isoformat() if props.last_modified else None,
        "CreatedOn": props.creation_time.isoformat() if props.creation_time else None,
        "ContentMD5": base64.b64encode(md5).decode() if md5 else None,
        "BlobType": "BlockBlob",
    }


def quoted(etag: str) -> str:
    """An ETag as the HTTP header carries it (listings give it without the quotes)."""
    return etag if etag.startswith('"') else f'"{etag}"'


def _if_match() -> Any:
    from azure.core import MatchConditions

    return MatchConditions.IfNotModified
