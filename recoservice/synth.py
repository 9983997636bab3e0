"""Deterministic synthetic catalog and usage data for demos, tests and benchmarks.

The data has the structure SAR feeds on: item popularity follows a power law; items sit in
categories, and inside a category in small co-purchase clusters that users buy together;
events spread over six months before a fixed end date (not "now", so a seed always gives the
same files) and group into sessions sharing a timestamp (so ``cooccurrenceUnit=timestamp``
has baskets to count). Item ids look like ``SYN-000123``, user ids like ``USR-000042``.

Usage: ``python -m recoservice.synth --items 2000 --users 3000 --seed 42 --out DIR`` writes
``DIR/catalog.csv`` (``id,name,category,description``) and ``DIR/usage.csv``
(``user,item,time,event``). ``generate(items, users, seed)`` returns the same rows.
"""

from __future__ import annotations

import argparse
import csv
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

    # Events per user: heavy-tailed like real shoppers, at least 2 so pairs exist.
    counts = np.minimum(2 + rng.geometric(1 / 14, users), MAX_EVENTS_PER_USER)
    user_of = np.repeat(np.arange(users), counts)
    n = len(user_of)
    home = rng.integers(0, items, users)                    # an item whose cluster the user likes
    home_item = home[user_of]
    mode = rng.choice(3, size=n, p=(0.5, 0.3, 0.2))         # cluster, category, anywhere
    lo = np.where(mode == 0, cluster_start[home_item],
                  np.where(mode == 1, cat_start[item_cat[home_item]], 0))
    hi = np.where(mode == 0, cluster_end[home_item],
                  np.where(mode == 1, cat_end[item_cat[home_item]], items))
    # Popularity-weighted draw inside [lo, hi) by inverting the cumulative weights.
    target = cum[lo] + rng.random(n) * (cum[hi] - cum[lo])
    item_of = np.clip(np.searchsorted(cum, target, side="right") - 1, lo, hi - 1)

    sessions_per_user = 1 + counts // 5
    max_sessions = int(sessions_per_user.max())
    session_time = END - rng.random((users, max_sessions)) * SPAN_SECONDS
    session_of = (rng.random(n) * sessions_per_user[user_of]).astype(np.int64)
    times = np.floor(session_time[user_of, session_of])
    events = rng.choice(len(EVENTS), size=n, p=EVENT_P)

    iso = _iso(times)
    usage: list[UsageRow] = [
        (f"USR-{u:06d}", f"SYN-{i:06d}", t, EVENTS[e])
        for u, i, t, e in zip(user_of.tolist(), item_of.tolist(), iso, events.tolist(),
                              strict=True)
    ]
    return catalog, usage


def to_csv(rows: list[tuple[str, ...]]) -> bytes:
    """Rows as CSV bytes (what the catalog and usage upload routes accept)."""
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode("utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m recoservice.synth", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    catalog, usage = generate(args.items, args.users, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "catalog.csv").write_bytes(to_csv(catalog))
    (args.out / "usage.csv").write_bytes(to_csv(usage))
    print(f"wrote {len(catalog)} items and {len(usage)} usage events to {args.out}")


if __name__ == "__main__":
    main()
