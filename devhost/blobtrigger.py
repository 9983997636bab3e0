"""Blob triggers by polling, with receipts so that a blob version triggers once.

Like the host's blob trigger: every new (container, blob, ETag) invokes the function once; a
re-upload (new ETag) invokes it again; receipts are in the store, so a restart does not re-fire.
A failing invocation is retried on the next polls, 5 attempts in all (the host's
``maxDequeueCount``); then the blob version is recorded as poison (receipt status ``poison``,
logged), a message like the host's goes to queue ``webjobs-blobtrigger-poison`` (base64 JSON:
``Type``, ``FunctionId``, ``BlobType``, ``ContainerName``, ``BlobName``, ``ETag``; best effort)
and it is never retried.

The function gets an ``azure.functions.InputStream`` as the worker builds it from the host's
trigger metadata: ``name`` = ``"container/blob"``, ``uri`` (no SAS token), ``length``,
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
from typing import Any

from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.functions.blob import InputStream
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devhost.durable.store import Store
from devhost.indexer import FunctionInfo, invoke

log = logging.getLogger("devhost.blob")

MAX_ATTEMPTS = 5
POISON_QUEUE = "webjobs-blobtrigger-poison"


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
    name = setting or "AzureWebJobsStorage"
    value = os.environ.get(name)
    if not value:
        raise KeyError(f"connection setting '{name}' is not set (devhost needs a connection "
                       "string, e.g. Azurite's)")
    return value


class BlobTrigger:
    """Polls one blob-triggered function's container and invokes the function."""

    def __init__(self, info: FunctionInfo, store: Store, client_binding: str,
                 interval: float = 1.0) -> None:
        self.info = info
        self.client_binding = client_binding  # the durable client JSON, if the function has one
        self.store = store
        self.interval = interval
        self.path = BlobPath.parse(str(info.trigger["path"]))
        self.conn = connection_string(info.trigger.get("connection"))
        self.service = BlobServiceClient.from_connection_string(self.conn)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
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
        if receipt is not None and receipt["status"] in ("done", "poison"):
            return
        attempts = int(receipt["attempts"]) if receipt else 0
        log.info("blob trigger %s fired for %s/%s (attempt %d)", self.info.name,
                 self.path.container, blob.name, attempts + 1)
        try:
            stream = await asyncio.get_running_loop().run_in_executor(None, self._stream, blob)
        except (ResourceModifiedError, ResourceNotFoundError):
            return  # replaced or deleted since the listing: the next poll sees the new version
        try:
            kwargs: dict[str, Any] = {self.info.arg_name: stream}
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
                await asyncio.get_running_loop().run_in_executor(None, self._poison, blob)
        with self.store.tx() as db:
            db.execute("INSERT OR REPLACE INTO receipts (function, container, blob, etag, status,"
                       " attempts, updated) VALUES (?,?,?,?,?,?,?)",
                       (self.info.name, self.path.container, blob.name, blob.etag, status,
                        attempts, time.time()))

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

    def _stream(self, blob: Any) -> InputStream:
        client = self.service.get_blob_client(self.path.container, blob.name)
        downloader = client.download_blob(etag=blob.etag, match_condition=_if_match())
        data = downloader.readall()
        props = downloader.properties
        md5 = props.content_settings.content_md5
        properties = {
            "ETag": quoted(props.etag),
            "ContentLength": props.size,
            "Length": props.size,
            "ContentType": props.content_settings.content_type,
            "LastModified": props.last_modified.isoformat() if props.last_modified else None,
            "CreatedOn": props.creation_time.isoformat() if props.creation_time else None,
            "ContentMD5": base64.b64encode(md5).decode() if md5 else None,
            "BlobType": "BlockBlob",
        }
        # the worker's concrete class (func.InputStream is its abstract base)
        # client.url carries the connection's SAS token, if any; the host's Uri never does
        return InputStream(data=data, name=f"{self.path.container}/{blob.name}",
                           uri=client.url.split("?", 1)[0], length=props.size,
                                   blob_properties=properties, metadata=dict(props.metadata or {}))


def quoted(etag: str) -> str:
    """An ETag as the HTTP header carries it (listings give it without the quotes)."""
    return etag if etag.startswith('"') else f'"{etag}"'


def _if_match() -> Any:
    from azure.core import MatchConditions

    return MatchConditions.IfNotModified
