"""Run Microsoft Recommenders' ``SARSingleNode`` on exchanged files (reference for the bench).

Runs inside ``bench/.venv-sar`` (recommenders 1.2.1, numpy<2, pandas), never in the project
venv. ``bench/recoservice_scoring.py`` writes the inputs and reads the outputs:

- ``usage.npz``: ``user``, ``item`` (int, one row per distinct (user, item) pair);
- ``seeds.npz``: ``indptr``, ``indices`` (CSR of seed items per request, every row non-empty);
- ``params.json``: ``similarity``, ``threshold``, ``k``, ``block``;
- writes ``result.npz``: ``idx`` (int32 [n, k], -1 padded), ``score`` (float64 [n, k]),
  ``fit_seconds``, ``score_seconds``, ``score_cpu_seconds``, ``max_rss_mb``.

Usage: ``bench/.venv-sar/bin/python bench/sar_reference/run_sar.py DIR``
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from recommenders.models.sar.sar_singlenode import SARSingleNode


def main(work: Path) -> None:
    params = json.loads((work / "params.json").read_text())
    usage = np.load(work / "usage.npz")
    seeds = np.load(work / "seeds.npz")
    k, block = int(params["k"]), int(params["block"])
    # Ratings are all 1: item-to-item scores only use the binary co-occurrence, and
    # SARSingleNode wants distinct (user, item) rows.
    train = pd.DataFrame({"userID": usage["user"], "itemID": usage["item"], "rating": 1.0})

    model = SARSingleNode(similarity_type=params["similarity"], threshold=int(params["threshold"]),
                          timedecay_formula=False)
    started = time.perf_counter()
    model.fit(train)
    fit_seconds = time.perf_counter() - started
    # Jaccard/lift leave 0/0 = NaN between two items that both fall under the threshold;
    # argpartition would rank NaN first, so count those pairs as dissimilar, as our engine does.
    if isinstance(model.item_similarity, np.ndarray):
        np.nan_to_num(model.item_similarity, copy=False)

    indptr, indices = seeds["indptr"], seeds["indices"]
    n = len(indptr) - 1
    request_of = np.repeat(np.arange(n), np.diff(indptr))
    frames = []
    started, cpu = time.perf_counter(), time.process_time()
    for lo in range(0, n, block):  # a block bounds the dense [block, n_items] score matrix
        hi = min(n, lo + block)
        rows = slice(indptr[lo], indptr[hi])
        query = pd.DataFrame({"userID": request_of[rows], "itemID": indices[rows]})
        frames.append(model.get_item_based_topk(query, top_k=k, sort_top_k=True))
    score_seconds = time.perf_counter() - started
    score_cpu_seconds = time.process_time() - cpu

    top = pd.concat(frames, ignore_index=True)
    top["rank"] = top.groupby("userID").cumcount()
    idx = np.full((n, k), -1, dtype=np.int32)
    score = np.zeros((n, k), dtype=np.float64)
    idx[top["userID"].to_numpy(), top["rank"].to_numpy()] = top["itemID"].to_numpy()
    score[top["userID"].to_numpy(), top["rank"].to_numpy()] = top["prediction"].to_numpy()
    np.savez(work / "result.npz", idx=idx, score=score, fit_seconds=fit_seconds,
             score_seconds=score_seconds, score_cpu_seconds=score_cpu_seconds,
             max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
