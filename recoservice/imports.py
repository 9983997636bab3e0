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
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from recoservice.state import State, now_iso

MAX_ITEM_ID = 50
MAX_USER_ID = 255
EVENT_TYPES = {name.lower(): name for name in
               ("Click", "RecommendationClick", "AddShopCart", "RemoveShopCart", "Purchase")}


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
    """CSV rows of a body (UTF-8, BOM tolerated, bad bytes replaced rather than fatal)."""
    text = data.decode("utf-8-sig", errors="replace")
    return csv.reader(io.StringIO(text), skipinitialspace=True)


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
    """Parse a usage file and store its events; return the statistics and the new file id."""
    stats = ImportStats()
    with state.db() as conn:
        known = {r[0] for r in conn.execute(
            "SELECT item_id FROM catalog_items WHERE model_id = ?", (model_id,))}
    file_id = uuid.uuid4().hex
    events: list[tuple] = []
    for fields in _rows(data):
        if not fields or all(not f.strip() for f in fields):
            continue
        stats.processed += 1
        fields = [f.strip() for f in fields]
        if len(fields) < 3 or not fields[0] or not fields[1] or not fields[2]:
            stats.bad("MissingFields")
            continue
        user_id, item_id, when = fields[0], fields[1], fields[2]
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
        event = EVENT_TYPES.get((fields[3] if len(fields) > 3 and fields[3] else "click").lower())
        if event is None:
            stats.bad("UnknownEventType")
            continue
        events.append((model_id, file_id, user_id, item_id, ts, event))
        stats.imported += 1
    with state.db() as conn:
        conn.executemany("INSERT INTO usage_events (model_id, file_id, user_id, item_id, ts, "
                         "event) VALUES (?, ?, ?, ?, ?, ?)", events)
        conn.execute("INSERT INTO usage_files (id, model_id, display_name, created, size_bytes, "
                     "imported) VALUES (?, ?, ?, ?, ?, ?)",
                     (file_id, model_id, display_name, now_iso(), len(data), stats.imported))
    return stats, file_id
