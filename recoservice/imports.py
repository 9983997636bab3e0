"""Catalog and usage file import: parse CSV lines, count bad ones by error code, store the rest.

Bad lines are never fatal; each is counted under one error code:

catalog (``<ItemId>,<ItemName>,<Category>[,<Description>[,<name=value> ...]]``)
    ``MissingFields`` (fewer than 3 fields or an empty id/name), ``ItemIdTooLong`` (> 50
    characters), ``BadFeatureFormat`` (a feature that is not ``name=value``), ``DuplicateItemId``
    (the id appeared earlier in the same file; uploading a catalog again updates known items).
usage (``<UserId>,<ItemId>,<Time ISO-8601>[,<EventType>]``)
    ``MissingFields``, ``UserIdTooLong`` (> 255), ``ItemIdTooLong`` (> 50), ``UnknownItem`` (not
    in the model's catalog), ``BadTimestamp`` (not ISO-8601), ``UnknownEventType`` (not Click,
    RecommendationClick, AddShopCart, RemoveShopCart, Purchase; missing means Click).
Empty lines are skipped and not counted.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from array import array
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np

from recoservice.state import State, now_iso

MAX_ITEM_ID = 50
MAX_USER_ID = 255
EVENT_NAMES = ("Click", "RecommendationClick", "AddShopCart", "RemoveShopCart", "Purchase")
EVENT_TYPES = {name.lower(): name for name in EVENT_NAMES}
EVENT_CODES = {name.lower(): code for code, name in enumerate(EVENT_NAMES)}


@dataclass
class ImportStats:
    """Import statistics as the v4 API answers them."""

    processed: int = 0
    imported: int = 0
    errors: Counter = field(default_factory=Counter)

    def bad(self, code: str) -> None:
        self.errors[code] += 1

    def to_json(self) -> dict:
        return {
            "processedLineCount": self.processed,
            "errorLineCount": sum(self.errors.values()),
            "importedLineCount": self.imported,
            "errorSummary": [{"errorCode": code, "errorCodeCount": count}
                             for code, count in sorted(self.errors.items())],
        }


def _rows(data: bytes):
    """CSV rows of a body (UTF-8, BOM tolerated, bad bytes replaced rather than fatal).

    Decoded lazily, so a large upload is not held twice in memory.
    """
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", errors="replace",
                            newline="")
    return csv.reader(text, skipinitialspace=True)


def import_catalog(state: State, model_id: str, data: bytes, display_name: str) -> ImportStats:
    """Parse a catalog file and upsert its items into the model's catalog."""
    stats = ImportStats()
    seen: set[str] = set()
    items: list[tuple] = []
    for fields in _rows(data):
        if not fields or all(not f.strip() for f in fields):
            continue
        stats.processed += 1
        fields = [f.strip() for f in fields]
        if len(fields) < 3 or not fields[0] or not fields[1]:
            stats.bad("MissingFields")
            continue
        item_id, name, category = fields[0], fields[1], fields[2]
        if len(item_id) > MAX_ITEM_ID:
            stats.bad("ItemIdTooLong")
            continue
        description = fields[3] if len(fields) > 3 else ""
        features, raw_features = [], [f for f in fields[4:] if f]
        if any("=" not in f for f in raw_features):
            stats.bad("BadFeatureFormat")
            continue
        for feature in raw_features:
            fname, _, fvalue = feature.partition("=")
            features.append({"name": fname.strip(), "value": fvalue.strip()})
        if item_id in seen:
            stats.bad("DuplicateItemId")
            continue
        seen.add(item_id)
        items.append((item_id, name, category, description, json.dumps(features),
                      ", ".join(raw_features)))
        stats.imported += 1
    with state.db() as conn:
        row = conn.execute("SELECT COALESCE(MAX(seq), -1) AS top FROM catalog_items "
                           "WHERE model_id = ?", (model_id,)).fetchone()
        base = int(row["top"]) + 1
        # Known items keep their position (seq) and get new fields; new ones go to the end.
        conn.executemany(
            "INSERT INTO catalog_items (model_id, seq, item_id, name, category, description, "
            "features, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (model_id, item_id) DO UPDATE SET name = excluded.name, "
            "category = excluded.category, description = excluded.description, "
            "features = excluded.features, metadata = excluded.metadata",
            [(model_id, base + i, *item) for i, item in enumerate(items)])
        conn.execute(
            "INSERT INTO catalog_meta (model_id, display_name, modified) VALUES (?, ?, ?) "
            "ON CONFLICT (model_id) DO UPDATE SET display_name = excluded.display_name, "
            "modified = excluded.modified", (model_id, display_name, now_iso()))
    return stats


@lru_cache(maxsize=65_536)  # events of one session share a timestamp; parse it once
def parse_time(text: str) -> float | None:
    """Epoch seconds of an ISO-8601 time (naive times are UTC), ``None`` when unparseable."""
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def import_usage(state: State, model_id: str, data: bytes,
                 display_name: str) -> tuple[ImportStats, str]:
    """Parse a usage file and store its events; return the statistics and the new file id.

    Events are stored column-wise in ``<state>/usage/<model>-<file>.npz`` (ids dictionary-
    encoded, times float64, event type codes into ``EVENT_NAMES``): SQLite rows cost ~10x
    more to write and to read back for a build.
    """
    stats = ImportStats()
    with state.db() as conn:
        known = {r[0] for r in conn.execute(
            "SELECT item_id FROM catalog_items WHERE model_id = ?", (model_id,))}
    file_id = uuid.uuid4().hex
    users: dict[str, int] = {}
    items: dict[str, int] = {}
    user_code, item_code = array("i"), array("i")
    times, events = array("d"), array("b")
    for fields in _rows(data):
        if not fields or all(not f.strip() for f in fields):
            continue
        stats.processed += 1
        if len(fields) < 3:
            stats.bad("MissingFields")
            continue
        user_id, item_id, when = fields[0].strip(), fields[1].strip(), fields[2].strip()
        if not user_id or not item_id or not when:
            stats.bad("MissingFields")
            continue
        if len(user_id) > MAX_USER_ID:
            stats.bad("UserIdTooLong")
            continue
        if len(item_id) > MAX_ITEM_ID:
            stats.bad("ItemIdTooLong")
            continue
        if item_id not in known:
            stats.bad("UnknownItem")
            continue
        ts = parse_time(when)
        if ts is None:
            stats.bad("BadTimestamp")
            continue
        event = EVENT_CODES.get(fields[3].strip().lower() if len(fields) > 3 else "click", -1)
        if event < 0:
            stats.bad("UnknownEventType")
            continue
        user_code.append(users.setdefault(user_id, len(users)))
        item_code.append(items.setdefault(item_id, len(items)))
        times.append(ts)
        events.append(event)
        stats.imported += 1
    path = state.usage_path(model_id, file_id)
    with open(path, "wb") as fh:  # a file object keeps numpy from renaming the file
        np.savez(fh, user_ids=np.asarray(list(users), dtype=str),
                 item_ids=np.asarray(list(items), dtype=str),
                 user_code=np.frombuffer(user_code, dtype=np.int32),
                 item_code=np.frombuffer(item_code, dtype=np.int32),
                 ts=np.frombuffer(times, dtype=np.float64),
                 event=np.frombuffer(events, dtype=np.int8))
    state.publish(path)
    with state.db() as conn:
        conn.execute("INSERT INTO usage_files (id, model_id, display_name, created, size_bytes, "
                     "imported) VALUES (?, ?, ?, ?, ?, ?)",
                     (file_id, model_id, display_name, now_iso(), len(data), stats.imported))
    return stats, file_id
