"""Synthetic data: deterministic per seed, plausible shape, CLI writes the same rows; usage
synthesised over an existing catalog."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from datetime import datetime

import numpy as np

from recoservice.imports import EVENT_TYPES
from recoservice.synth import _related, generate, read_catalog, to_csv, usage_for_catalog


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


CATALOG = [("C9F-00163", "MOZO Flip Cover for Nokia Lumia 635 - White", "Accessories"),
           ("C9F-00166", "MOZO Flip Cover for Nokia Lumia 635 - Green", "Accessories"),
           ("3Y3-00004", "Nokia Lumia 635 Unlocked Black", "Phone"),
           ("FKF-00689", "Disney Infinity Play Set Pack - Toy Story Xbox 360", "Gaming"),
           ("FKF-00687", "Disney Infinity Power Disc Pack (Series 2) Xbox 360", "Gaming"),
           ("P3T-00003", "Surface wWinRT-32GB BSKU SC English US Hdwr Refurb Single", "Surface")]


def test_catalog_usage_is_deterministic_and_names_only_catalog_items():
    usage = usage_for_catalog(CATALOG, 300, 4)

    assert usage == usage_for_catalog(CATALOG, 300, 4)
    assert usage != usage_for_catalog(CATALOG, 300, 5)
    assert {row[1] for row in usage} <= {row[0] for row in CATALOG}
    assert len({row[0] for row in usage}) == 300
    assert {row[3] for row in usage} <= set(EVENT_TYPES.values())


def test_related_items_share_a_distinctive_word_across_categories():
    cats = np.array([0, 0, 1, 2, 2, 3])

    related = _related([row[1] for row in CATALOG], cats)

    assert sorted(related[2].tolist()) == [0, 1]   # the phone: its covers ("lumia", "nokia")
    assert related[0].tolist() == [2]               # a cover: the phone, not the other cover
    assert related[5].tolist() == []                # nothing else mentions Surface


def test_read_catalog_keeps_the_first_of_a_repeated_id_and_skips_short_lines():
    data = b"\xef\xbb\xbfA-1,One,Cat\nA-2,Two\nA-1,Again,Cat\nA-3, Three , Cat ,Desc\n"

    assert read_catalog(data) == [("A-1", "One", "Cat", ""), ("A-3", "Three", "Cat", "Desc")]


def test_cli_writes_usage_for_a_catalog_file(tmp_path):
    catalog = tmp_path / "catalog.csv"
    catalog.write_bytes(to_csv(CATALOG))

    subprocess.run([sys.executable, "-m", "recoservice.synth", "--catalog", str(catalog),
                    "--users", "40", "--seed", "5", "--out", str(tmp_path / "out")],
                   check=True, capture_output=True)

    assert (tmp_path / "out" / "usage.csv").read_bytes() \
        == to_csv(usage_for_catalog(read_catalog(catalog.read_bytes()), 40, 5))
    assert not (tmp_path / "out" / "catalog.csv").exists()
