"""The recommendations cache: one Azure Table entity per scored request, filled from chunk outputs.

Opt-in per app (``BATCH_CACHE_TABLE``, empty = off) and per file (``"job": {"cache": false}``
turns it off for that file). Each chunk's rows are written as soon as its output is verified
(activity ``fill_cache``), so the cache fills while the run goes on; a re-run or a newer run
overwrites rows (upsert, replace).

Keys (Azure Table keys refuse ``/ \\ # ?`` and control characters, and hold at most 1 KiB):

- PartitionKey: the model id and the build id, escaped (:func:`escape`) and joined by ``.``;
  a job without ``buildId`` scores with the model's active build, which the batch job does not
  report, so its partition names the build :data:`ACTIVE_BUILD` (``active``) and a lookup
  without a build in the app settings or the query reads that partition too.
- RowKey: the kind (``i`` item-to-item, ``u`` user-to-item) then the request's parts, each
  escaped and joined by ``.``: for item-to-item its distinct seed items, sorted (so
  ``["B","A"]`` and ``["A","B"]`` share one row); for user-to-item the user id (then its
  seed items, if the request has any).
- :func:`escape` keeps ``A-Z a-z 0-9 - _`` and writes every other character as ``~XX`` per
  UTF-8 byte: injective, and neither ``.`` nor a lone ``~`` is left in an escaped part, so the
  joined key is unambiguous. A key longer than :data:`MAX_KEY_CHARS` is cut to its first
  :data:`KEPT_KEY_CHARS` characters plus ``~~`` and the SHA-256 of the whole key (``~~``
  never occurs in a short key, so long and short keys never meet).

Properties: ``itemIds`` and ``scores`` (JSON lists, in the service's order; an item set of an
``Fbt`` build is a list of ids), ``names`` with ``includeMetadata``, ``count``, ``instanceId``
(the run that wrote the row) and ``writtenAt``. A JSON text over :data:`MAX_PROPERTY_CHARS`
UTF-16 units (a property holds 64 KiB) continues in ``itemIds_1``, ``itemIds_2``, ...; an entity
over :data:`MAX_ENTITY_BYTES` (1 MiB) is not written and counts as failed.

Writes: batched transactions of at most 100 entities of the partition and
:data:`MAX_BATCH_BYTES`, :data:`WRITE_THREADS` at a time; a refused transaction is written again
entity by entity, so one bad row does not fail its 99 neighbours; azure-core retries transient
failures. What still fails is counted, never raised: the cache never fails the results.
"""

from __future__ import annotations

import hashlib
import re
import string
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from recobatch.errors import ConfigurationError, InputError, StorageError
from recobatch.limits import safe_text
from recobatch.settings import Settings, get_settings
from recobatch.storage import connect, safe_error, shared_client

ACTIVE_BUILD = "active"
ITEM_KIND, USER_KIND = "i", "u"
_SAFE = frozenset(string.ascii_letters + string.digits + "-_")
MAX_KEY_CHARS = 512  # Table keys hold 1 KiB; longer keys are cut and hashed
KEPT_KEY_CHARS = 400
MAX_PROPERTY_CHARS = 30_000  # UTF-16 units per string property (64 KiB = 32,768)
MAX_ENTITY_BYTES = 1_000_000  # the service's limit is 1 MiB, counted as below
MAX_BATCH_ROWS = 100  # entities per transaction (service limit)
MAX_BATCH_BYTES = 2_000_000  # a transaction's payload is at most 4 MiB on the wire
WRITE_THREADS = 4
TABLE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
# Lookup limits (untrusted input): as the single-call API takes them.
MAX_LOOKUP_ITEMS = 20
MAX_ID_CHARS = 50
_CLIENT_OPTIONS: dict[str, Any] = {"connection_timeout": 10, "read_timeout": 60,
                                   "retry_total": 3}


def escape(text: str) -> str:
    """``text`` with every character outside ``A-Z a-z 0-9 - _`` as ``~XX`` per UTF-8 byte."""
    return "".join(ch if ch in _SAFE else
                   "".join(f"~{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
                   for ch in text)


def _key(parts: Iterable[str]) -> str:
    key = ".".join(escape(part) for part in parts)
    if len(key) <= MAX_KEY_CHARS:
        return key
    digest = hashlib.sha256(key.encode("ascii")).hexdigest()
    return f"{key[:KEPT_KEY_CHARS]}~~{digest}"


def partition_key(model_id: str, build_id: int | str | None) -> str:
    """The partition of a model's build (:data:`ACTIVE_BUILD` when the job named none)."""
    return _key([str(model_id), ACTIVE_BUILD if build_id in (None, "") else str(build_id)])


def item_key(seed_items: Iterable[str]) -> str:
    """The row of an item-to-item request: its distinct seed items, sorted."""
    return _key([ITEM_KIND, *sorted(set(seed_items))])


def user_key(user_id: str, seed_items: Iterable[str] = ()) -> str:
    """The row of a user-to-item request: the user id (then its distinct seeds, sorted)."""
    return _key([USER_KIND, str(user_id), *sorted(set(seed_items))])


def request_key(request: Any, api_name: str) -> str | None:
    """The row key of a chunk input's request (``SeedItems`` / ``UserId``), else ``None``."""
    if not isinstance(request, dict):
        return None
    seeds = request.get("SeedItems") or []
    if not isinstance(seeds, list) or not all(isinstance(s, str) for s in seeds):
        return None
    if api_name == "UserRecommend":
        user = request.get("UserId")
        return user_key(user, seeds) if isinstance(user, str) and user else None
    return item_key(seeds) if seeds else None


def check_table_name(name: str, where: str = "BATCH_CACHE_TABLE") -> str:
    """``name`` when it is a valid table name (3-63 letters and digits, a letter first)."""
    if not TABLE_NAME_RE.match(name):
        raise ConfigurationError(f"the app setting {where} must be a table name (3-63 letters "
                                 f"and digits, starting with a letter), got "
                                 f"{safe_text(name, 80)!r}.")
    return name


# ---- entities ----------------------------------------------------------------------------

def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _pieces(text: str) -> list[str]:
    """``text`` cut into pieces of at most :data:`MAX_PROPERTY_CHARS` UTF-16 units."""
    if _utf16(text) == len(text):
        return [text[i:i + MAX_PROPERTY_CHARS]
                for i in range(0, len(text), MAX_PROPERTY_CHARS)] or [""]
    pieces: list[str] = []
    current: list[str] = []
    units = 0
    for ch in text:
        width = 2 if ord(ch) > 0xFFFF else 1
        if units + width > MAX_PROPERTY_CHARS:
            pieces.append("".join(current))
            current, units = [], 0
        current.append(ch)
        units += width
    pieces.append("".join(current))
    return pieces


def _put(entity: dict[str, Any], name: str, value: Any) -> None:
    """Store ``value`` as JSON text in ``name``, continued in ``name_1``, ... when long."""
    for number, piece in enumerate(_pieces(orjson.dumps(value).decode("utf-8"))):
        entity[name if number == 0 else f"{name}_{number}"] = piece


def _get(entity: Mapping[str, Any], name: str) -> Any:
    if name not in entity:
        return None
    pieces, number = [str(entity[name])], 1
    while f"{name}_{number}" in entity:
        pieces.append(str(entity[f"{name}_{number}"]))
        number += 1
    return orjson.loads("".join(pieces))


def entity_bytes(entity: Mapping[str, Any]) -> int:
    """An entity's size as the Table service counts it (strings as UTF-16)."""
    size = 4
    for name, value in entity.items():
        if name in ("PartitionKey", "RowKey"):
            size += 2 * _utf16(str(value))
            continue
        size += 8 + 2 * len(name)
        if isinstance(value, str):
            size += 4 + 2 * _utf16(value)
        else:
            size += 8
    return size


def _ids(items: list[Any], field_name: str) -> Any:
    values = [item.get(field_name) if isinstance(item, dict) else None for item in items]
    return values[0] if len(values) == 1 else values


def make_entity(partition: str, row: str, result: Any, instance_id: str, metadata: bool,
                written_at: datetime) -> dict[str, Any]:
    """The row of one scored request from its result (``{request, recommendations}``)."""
    recs = result.get("recommendations") if isinstance(result, dict) else None
    ids, scores, names = [], [], []
    for rec in recs if isinstance(recs, list) else []:
        items = rec.get("items") if isinstance(rec, dict) else None
        items = items if isinstance(items, list) else []
        ids.append(_ids(items, "itemId"))
        names.append(_ids(items, "name"))
        scores.append(rec.get("rating") if isinstance(rec, dict) else None)
    entity: dict[str, Any] = {"PartitionKey": partition, "RowKey": row}
    _put(entity, "itemIds", ids)
    _put(entity, "scores", scores)
    if metadata:
        _put(entity, "names", names)
    entity.update(count=len(ids), instanceId=instance_id, writtenAt=written_at)
    return entity


def answer(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The cached list in the v4 single-call shape: ``{"recommendedItems": [{"items": [{"id",
    "name"?}], "rating"}]}``."""
    ids, scores = _get(entity, "itemIds") or [], _get(entity, "scores") or []
    names = _get(entity, "names")
    out = []
    for number, (ident, score) in enumerate(zip(ids, scores, strict=False)):
        group = ident if isinstance(ident, list) else [ident]
        named = names[number] if isinstance(names, list) and number < len(names) else None
        named_group = named if isinstance(named, list) else [named] * len(group)
        items = []
        for position, item_id in enumerate(group):
            item: dict[str, Any] = {"id": item_id}
            if names is not None:
                item["name"] = named_group[position] if position < len(named_group) else None
            items.append(item)
        out.append({"items": items, "rating": score})
    return {"recommendedItems": out}


# ---- clients -----------------------------------------------------------------------------

_created: set[tuple[int, str]] = set()


def table_service(settings: Settings | None = None) -> TableServiceClient:
    """The process-wide :class:`TableServiceClient` for these settings (created once), from
    the same connection as blobs: a connection string, or the identity's table endpoint."""
    return shared_client(settings or get_settings(), _make_service)


def _make_service(settings: Settings) -> TableServiceClient:
    return connect(TableServiceClient, "table", settings, _CLIENT_OPTIONS,
                   malformed="the AzureWebJobsStorage connection string is malformed "
                             "(or has no table endpoint).")


def table_client(service: TableServiceClient, name: str, create: bool = False) -> TableClient:
    """The cache table; with ``create``, made once per process when missing."""
    table = service.get_table_client(check_table_name(name))
    if create and (id(service), name) not in _created:
        try:
            service.create_table(name)
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise StorageError(f"cannot create the cache table {name}: "
                               f"{safe_error(exc)}") from None
        _created.add((id(service), name))
    return table


# ---- fill --------------------------------------------------------------------------------

@dataclass
class FillReport:
    """What a fill wrote: distinct rows upserted, rows that failed, the first failure's
    sentence."""

    message: str = ""
    refused: int = 0  # requests without a key, oversized rows
    _written: set[str] = field(default_factory=set, repr=False)
    _failed: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def rows(self) -> int:
        return len(self._written)

    @property
    def failed(self) -> int:
        return self.refused + len(self._failed - self._written)

    def add(self, written: Iterable[str] = (), failed: Iterable[str] = (), refused: int = 0,
            message: str = "") -> None:
        with self._lock:
            self._written.update(written)
            self._failed.update(failed)
            self.refused += refused
            if message and not self.message:
                self.message = message

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"rows": self.rows, "failed": self.failed}
        if self.message:
            body["message"] = self.message
        return body


def _rows(requests: Iterable[Any], results: Iterable[Any], *, partition: str, api_name: str,
          instance_id: str, metadata: bool, written_at: datetime,
          report: FillReport) -> Iterator[tuple[dict[str, Any], int]]:
    """The row of each request and its size; requests without a key and oversized rows count
    as failed."""
    for request, result in zip(requests, results, strict=False):
        row = request_key(request, api_name)
        if row is None:
            report.add(refused=1,
                       message="a request has no seed items or user id to key it by.")
            continue
        entity = make_entity(partition, row, result, instance_id, metadata, written_at)
        size = entity_bytes(entity)
        if size > MAX_ENTITY_BYTES:
            report.add(refused=1, message=f"a row is {size:,} bytes, over the table's "
                                          f"{MAX_ENTITY_BYTES:,}-byte entity limit.")
            continue
        yield entity, size


def _batches(rows: Iterable[tuple[dict[str, Any], int]]) -> Iterator[list[dict[str, Any]]]:
    """Transactions of at most 100 rows and :data:`MAX_BATCH_BYTES`; a key repeated within
    one transaction (refused by the service) keeps its last row, as a later upsert would."""
    batch: dict[str, dict[str, Any]] = {}
    size = 0
    for entity, weight in rows:
        if batch and (len(batch) >= MAX_BATCH_ROWS or size + weight > MAX_BATCH_BYTES):
            yield list(batch.values())
            batch, size = {}, 0
        batch.pop(entity["RowKey"], None)
        batch[entity["RowKey"]] = entity
        size += weight
    if batch:
        yield list(batch.values())


def _write_batch(table: TableClient, batch: list[dict[str, Any]], report: FillReport) -> None:
    try:
        table.submit_transaction([("upsert", e, {"mode": UpdateMode.REPLACE}) for e in batch])
        report.add(written=[e["RowKey"] for e in batch])
        return
    except AzureError as exc:
        if len(batch) == 1:
            report.add(failed=[batch[0]["RowKey"]],
                       message=f"a cache write failed: {safe_error(exc)}")
            return
    # One refused entity fails its whole transaction: write them one by one instead.
    for entity in batch:
        try:
            table.upsert_entity(entity, mode=UpdateMode.REPLACE)
            report.add(written=[entity["RowKey"]])
        except AzureError as exc:
            report.add(failed=[entity["RowKey"]],
                       message=f"a cache write failed: {safe_error(exc)}")


def fill(table: TableClient, requests: Iterable[Any], results: Iterable[Any], *,
         partition: str, api_name: str, instance_id: str, metadata: bool,
         written_at: datetime | None = None, threads: int = WRITE_THREADS) -> FillReport:
    """Upsert the row of each (request, result) pair into ``partition``.

    Rows are built as the results stream in and written in transactions of up to 100,
    ``threads`` at a time (at most twice that many built and waiting), so memory does not grow
    with the chunk (but for the set of keys written).
    ``rows`` counts the distinct rows written, ``failed`` the requests whose row was not
    written. Never raises for a row.
    """
    report = FillReport()
    written_at = written_at or datetime.now(UTC)
    rows = _rows(requests, results, partition=partition, api_name=api_name,
                 instance_id=instance_id, metadata=metadata, written_at=written_at,
                 report=report)
    threads = max(1, threads)
    pending: deque[Future[None]] = deque()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for batch in _batches(rows):
            if len(pending) >= 2 * threads:
                pending.popleft().result()
            pending.append(pool.submit(_write_batch, table, batch, report))
        for future in pending:
            future.result()
    return report


# ---- lookup ------------------------------------------------------------------------------

def lookup_key(items: list[str] | None, user: str | None) -> str:
    """The row key of a lookup, validated: at most 20 items of at most 50 characters (and a
    user id of at most 50), one of ``items`` or ``user`` required.

    Raises
    ------
    InputError
        Naming the parameter at fault (values are clipped, never echoed whole).
    """
    items = list(items or [])
    if user is None and not items:
        raise InputError("give items (item ids, comma-separated) or user (a user id).")
    if len(items) > MAX_LOOKUP_ITEMS:
        raise InputError(f"items holds {len(items)} ids, over the limit of "
                         f"{MAX_LOOKUP_ITEMS}.")
    for number, item in enumerate(items):
        if not item:
            raise InputError(f"items[{number}] is empty.")
        if len(item) > MAX_ID_CHARS:
            raise InputError(f"items[{number}] is {len(item)} characters long, over the limit "
                             f"of {MAX_ID_CHARS}.")
    if user is not None:
        if not user or len(user) > MAX_ID_CHARS:
            raise InputError(f"user must be 1 to {MAX_ID_CHARS} characters long.")
        return user_key(user, items)
    return item_key(items)


def lookup(table: TableClient, partition: str, row: str) -> dict[str, Any] | None:
    """The cached entity, or ``None`` when the key (or the table) is not there."""
    try:
        return dict(table.get_entity(partition, row))
    except ResourceNotFoundError:
        return None
    except AzureError as exc:
        raise StorageError(f"the cache lookup failed: {safe_error(exc)}") from None
