"""Deterministic synthetic catalog and usage data for demos, tests and benchmarks.

The data has the structure SAR feeds on: item popularity follows a power law; items sit in
categories, and inside a category in small co-purchase clusters that users buy together;
events spread over six months before a fixed end date (not "now", so a seed always gives the
same files) and group into sessions sharing a timestamp (so ``cooccurrenceUnit=timestamp``
has baskets to count). Item ids look like ``SYN-000123``, user ids like ``USR-000042``.

Usage: ``python -m recoservice.synth --items 2000 --users 3000 --seed 42 --out DIR`` writes
``DIR/catalog.csv`` (``id,name,category,description``) and ``DIR/usage.csv``
(``user,item,time,event``). ``generate(items, users, seed)`` returns the same rows.

Over an existing catalog (e.g. ``samples/msstore-catalog.csv``, the ``demo`` model's):
``python -m recoservice.synth --catalog FILE --users 10000 --seed 42 --out DIR`` writes only
``DIR/usage.csv``; ``usage_for_catalog(read_catalog(data), users, seed)`` returns the same rows.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

CATEGORIES = ("Gaming", "Accessories", "PCs", "Software", "Office", "Surface", "Phone",
              "Audio", "Cameras", "Books", "Music", "Movies")
ADJECTIVES = ("Classic", "Compact", "Deluxe", "Eco", "Pro", "Smart", "Ultra", "Wireless",
              "Portable", "Premium", "Rugged", "Slim")
NOUNS = {"Gaming": "Game", "Accessories": "Cover", "PCs": "Laptop", "Software": "Suite",
         "Office": "License", "Surface": "Pen", "Phone": "Handset", "Audio": "Headset",
         "Cameras": "Lens", "Books": "Guide", "Music": "Album", "Movies": "Film"}
EVENTS = ("Click", "RecommendationClick", "AddShopCart", "RemoveShopCart", "Purchase")
EVENT_P = (0.55, 0.07, 0.15, 0.03, 0.20)
END = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
SPAN_SECONDS = 180 * 86400
CLUSTER_SIZE = 8
MAX_EVENTS_PER_USER = 120
# Where each event's item comes from, relative to the user's "home" item: its cluster, its
# category, anywhere (popularity only), or (catalog usage only) a related item of another
# category, one whose name shares a distinctive word with the home item.
MODE_P = (0.5, 0.3, 0.2)
CATALOG_MODE_P = (0.45, 0.3, 0.15, 0.1)
# Words that say nothing about what an item goes with (colours, SKU noise, languages).
_STOP_WORDS = frozenset(
    "black white blue red green pink purple orange yellow grey gray cyan magenta teal brown "
    "silver gold navy camel clear dark light bright with edition english hdwr single online "
    "dwnld license licence pack download version retail case cover".split())

CatalogRow = tuple[str, str, str, str]
UsageRow = tuple[str, str, str, str]


def _iso(seconds: np.ndarray) -> list[str]:
    stamps = np.asarray(seconds, dtype="int64").astype("datetime64[s]")
    return [f"{s}Z" for s in np.datetime_as_string(stamps, unit="s")]


def generate(items: int, users: int, seed: int) -> tuple[list[CatalogRow], list[UsageRow]]:
    """Make a catalog of ``items`` items and usage events of ``users`` users.

    Returns
    -------
    (catalog_rows, usage_rows)
        ``(item_id, name, category, description)`` and ``(user_id, item_id, iso_time, event)``
        tuples; the same ``seed`` always gives the same rows.
    """
    if items < 1 or users < 1:
        raise ValueError("items and users must be at least 1")
    rng = np.random.default_rng(seed)
    n_cat = min(len(CATEGORIES), items)
    item_cat = (np.arange(items) * n_cat) // items          # contiguous category blocks
    cat_start = np.searchsorted(item_cat, np.arange(n_cat), side="left")
    cat_end = np.searchsorted(item_cat, np.arange(n_cat), side="right")
    # Clusters are runs of CLUSTER_SIZE items inside a category.
    cluster_start = np.maximum(cat_start[item_cat],
                               (np.arange(items) // CLUSTER_SIZE) * CLUSTER_SIZE)
    cluster_end = np.minimum(cat_end[item_cat], cluster_start + CLUSTER_SIZE)
    popularity = 1.0 / (rng.permutation(items) + 1.0) ** 1.1
    cum = np.concatenate(([0.0], np.cumsum(popularity)))

    adjectives = rng.integers(0, len(ADJECTIVES), items)
    catalog: list[CatalogRow] = []
    for i in range(items):
        category = CATEGORIES[item_cat[i]]
        name = f"{ADJECTIVES[adjectives[i]]} {NOUNS[category]} {i:06d}"
        catalog.append((f"SYN-{i:06d}", name, category, f"Synthetic {category.lower()} item"))

    usage = _draw_usage(rng, [row[0] for row in catalog], users, item_cat, cluster_start,
                        cluster_end, cum, MODE_P)
    return catalog, usage


def _draw_usage(rng: np.random.Generator, item_ids: list[str], users: int,
                item_cat: np.ndarray, cluster_start: np.ndarray, cluster_end: np.ndarray,
                cum: np.ndarray, mode_p: tuple[float, ...],
                related: list[np.ndarray] | None = None,
                popularity: np.ndarray | None = None) -> list[UsageRow]:
    """Usage events over items ``0..len(item_ids)-1`` (categories are contiguous blocks)."""
    items = len(item_ids)
    n_cat = int(item_cat.max()) + 1
    cat_start = np.searchsorted(item_cat, np.arange(n_cat), side="left")
    cat_end = np.searchsorted(item_cat, np.arange(n_cat), side="right")
    # Events per user: heavy-tailed like real shoppers, at least 2 so pairs exist.
    counts = np.minimum(2 + rng.geometric(1 / 14, users), MAX_EVENTS_PER_USER)
    user_of = np.repeat(np.arange(users), counts)
    n = len(user_of)
    home = rng.integers(0, items, users)                    # an item whose cluster the user likes
    home_item = home[user_of]
    mode = rng.choice(len(mode_p), size=n, p=mode_p)        # cluster, category, anywhere, related
    lo = np.where(mode == 0, cluster_start[home_item],
                  np.where(mode == 2, 0, cat_start[item_cat[home_item]]))
    hi = np.where(mode == 0, cluster_end[home_item],
                  np.where(mode == 2, items, cat_end[item_cat[home_item]]))
    # Popularity-weighted draw inside [lo, hi) by inverting the cumulative weights.
    target = cum[lo] + rng.random(n) * (cum[hi] - cum[lo])
    item_of = np.clip(np.searchsorted(cum, target, side="right") - 1, lo, hi - 1)

    sessions_per_user = 1 + counts // 5
    max_sessions = int(sessions_per_user.max())
    session_time = END - rng.random((users, max_sessions)) * SPAN_SECONDS
    session_of = (rng.random(n) * sessions_per_user[user_of]).astype(np.int64)
    times = np.floor(session_time[user_of, session_of])
    events = rng.choice(len(EVENTS), size=n, p=EVENT_P)

    if related is not None and popularity is not None:
        # Related draws (a home item without related items keeps its category draw above).
        picks = np.flatnonzero(mode == 3)
        for event, u in zip(picks.tolist(), rng.random(len(picks)).tolist(), strict=True):
            candidates = related[home_item[event]]
            if len(candidates):
                weights = np.cumsum(popularity[candidates])
                at = int(np.searchsorted(weights, u * weights[-1], side="right"))
                item_of[event] = candidates[min(at, len(candidates) - 1)]

    iso = _iso(times)
    return [
        (f"USR-{u:06d}", item_ids[i], t, EVENTS[e])
        for u, i, t, e in zip(user_of.tolist(), item_of.tolist(), iso, events.tolist(),
                              strict=True)
    ]


def _related(names: list[str], item_cat: np.ndarray) -> list[np.ndarray]:
    """For each item, the items of OTHER categories whose names share a distinctive word.

    A distinctive word has at least four letters, is no colour or SKU noise, and occurs in
    at most 5 % of the catalog but in two categories or more ("Surface" links the Surface
    Pro 3 sleeves among the accessories to the Surface devices).
    """
    words = [{w for w in re.findall(r"[a-z][a-z0-9]{3,}", name.lower())
              if w not in _STOP_WORDS} for name in names]
    holders: dict[str, list[int]] = {}
    for i, ws in enumerate(words):
        for w in ws:
            holders.setdefault(w, []).append(i)
    limit = max(3, len(names) // 20)
    linking = {w: np.array(idx) for w, idx in holders.items()
               if len(idx) <= limit and len(set(item_cat[idx].tolist())) > 1}
    related = []
    for i, ws in enumerate(words):
        found = [linking[w] for w in sorted(ws) if w in linking]
        if not found:
            related.append(np.empty(0, dtype=np.int64))
            continue
        pool = np.unique(np.concatenate(found))
        related.append(pool[item_cat[pool] != item_cat[i]])
    return related


def read_catalog(data: bytes) -> list[CatalogRow]:
    """Rows of a v4 catalog file (``<ItemId>,<ItemName>,<Category>[,<Description>...]``).

    Lines with fewer than three fields are skipped, as is a repeated item id (first wins).
    """
    rows: list[CatalogRow] = []
    seen: set[str] = set()
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    for fields in csv.reader(text, skipinitialspace=True):
        fields = [f.strip() for f in fields]
        if len(fields) < 3 or not fields[0] or fields[0] in seen:
            continue
        seen.add(fields[0])
        rows.append((fields[0], fields[1], fields[2], fields[3] if len(fields) > 3 else ""))
    return rows


def usage_for_catalog(catalog: Sequence[Sequence[str]], users: int,
                      seed: int) -> list[UsageRow]:
    """Synthesise usage events of ``users`` users over an existing catalog.

    Categories come from the catalog's third field. Inside a category, items are ordered by
    id, and runs of ``CLUSTER_SIZE`` neighbours form the co-purchase clusters (ids of one
    product line usually share a prefix: ``RD2-00077`` … ``RD2-00107`` are Type Covers).
    Each user has a home item and draws events from its cluster, its category, related items
    of other categories (:func:`_related`) or anywhere, by power-law popularity.

    Returns
    -------
    list of ``(user_id, item_id, iso_time, event)``, the same for the same catalog and seed.
    """
    if not catalog or users < 1:
        raise ValueError("the catalog must have items and users must be at least 1")
    rng = np.random.default_rng(seed)
    categories = sorted({row[2] for row in catalog})
    order = sorted(range(len(catalog)), key=lambda i: (catalog[i][2], catalog[i][0]))
    item_ids = [catalog[i][0] for i in order]
    names = [catalog[i][1] for i in order]
    item_cat = np.array([categories.index(catalog[i][2]) for i in order])
    items = len(order)
    cat_start = np.searchsorted(item_cat, item_cat, side="left")
    cat_end = np.searchsorted(item_cat, item_cat, side="right")
    # Clusters: runs of CLUSTER_SIZE counted from the start of the item's category.
    offset = np.arange(items) - cat_start
    cluster_start = cat_start + (offset // CLUSTER_SIZE) * CLUSTER_SIZE
    cluster_end = np.minimum(cat_end, cluster_start + CLUSTER_SIZE)
    popularity = 1.0 / (rng.permutation(items) + 1.0) ** 1.1
    cum = np.concatenate(([0.0], np.cumsum(popularity)))
    return _draw_usage(rng, item_ids, users, item_cat, cluster_start, cluster_end, cum,
                       CATALOG_MODE_P, _related(names, item_cat), popularity)


def to_csv(rows: list[tuple[str, ...]]) -> bytes:
    """Rows as CSV bytes (what the catalog and usage upload routes accept)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode("utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m recoservice.synth", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--catalog", type=Path, default=None,
                        help="an existing v4 catalog file: write only usage.csv, over its items")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.catalog is not None:
        catalog = read_catalog(args.catalog.read_bytes())
        usage = usage_for_catalog(catalog, args.users, args.seed)
    else:
        catalog, usage = generate(args.items, args.users, args.seed)
        (args.out / "catalog.csv").write_bytes(to_csv(catalog))
    (args.out / "usage.csv").write_bytes(to_csv(usage))
    print(f"wrote {len(usage)} usage events over {len(catalog)} items to {args.out}")

if __name__ == "__main__":
    main()
