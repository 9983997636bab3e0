"""Synthetic data: deterministic per seed, plausible shape, CLI writes the same rows."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from datetime import datetime

from recoservice.imports import EVENT_TYPES
from recoservice.synth import generate, to_csv


def test_same_seed_gives_identical_rows():
    assert generate(300, 200, 7) == generate(300, 200, 7)


def test_different_seed_gives_different_usage():
    assert generate(300, 200, 7)[1] != generate(300, 200, 8)[1]


def test_rows_have_valid_ids_times_and_events():
    catalog, usage = generate(300, 200, 1)

    assert len(catalog) == 300
    assert all(re.fullmatch(r"SYN-\d{6}", row[0]) for row in catalog)
    ids = {row[0] for row in catalog}
    assert {row[1] for row in usage} <= ids
    assert {row[3] for row in usage} <= set(EVENT_TYPES.values())
    assert len({row[0] for row in usage}) == 200
    times = sorted(datetime.fromisoformat(row[2]) for row in usage)
    assert (times[-1] - times[0]).days > 60


def test_popularity_is_skewed():
    _, usage = generate(1000, 2000, 3)

    counts = sorted(Counter(row[1] for row in usage).values(), reverse=True)

    assert sum(counts[:100]) > 0.3 * len(usage)   # top 10 % of items, well above 10 % of events


def test_cli_writes_the_generated_rows(tmp_path):
    subprocess.run([sys.executable, "-m", "recoservice.synth", "--items", "50", "--users", "40",
                    "--seed", "5", "--out", str(tmp_path)], check=True, capture_output=True)

    catalog, usage = generate(50, 40, 5)
    assert (tmp_path / "catalog.csv").read_bytes() == to_csv(catalog)
    assert (tmp_path / "usage.csv").read_bytes() == to_csv(usage)
