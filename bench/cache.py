"""Benchmark: the recommendations cache, filled by a run and read by lookups (issue 14).

Prints figures; it is not a test. In one run, against a real Azurite, recoservice (``--demo``)
and devhost running the app with ``BATCH_CACHE_TABLE``:

1. the same ``--requests`` item-to-item requests (1-3 seeds each, fixed seed) run twice, once
   with ``"job": {"cache": false}`` and once with the cache on: wall time of each (upload to
   marker) and the rows the marker reports;
2. the fill rate: rows / (last row's table ``Timestamp`` - first row's), the rows written per
   second while the run went on, and rows / the cached run's wall time;
3. lookup latency, p50 and p99 over ``--lookups`` keys drawn from the requests: through the
   app (``GET /api/recommendations``, function key) and directly (``TableClient.get_entity``
   of the same entity with azure-data-tables), each one at a time and from 8 threads; the
   ratio of the two shows what the HTTP layer (devhost + the worker) costs.

Usage: ``.venv/bin/python bench/cache.py [--requests 100000] [--lookups 2000] [--keep]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from devhost.run import app_settings  # noqa: E402
from devhost.services import (  # noqa: E402
    REPO_ROOT,
    Service,
    start_azurite,
    start_devhost,
    start_recoservice,
)
from recobatch import cache  # noqa: E402

TABLE = "recocache"
THREADS = 8


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _timed(calls: list, threads: int) -> list[float]:
    """Milliseconds of each call, ``threads`` at a time."""
    def one(call) -> float:
        started = time.perf_counter()
        call()
        return (time.perf_counter() - started) * 1000

    if threads == 1:
        return [one(c) for c in calls]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, calls))


def _wait_marker(blob_service, name: str, timeout: float) -> tuple[dict, float]:
    from azure.core.exceptions import ResourceNotFoundError

    out = blob_service.get_container_client("batch-output")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for marker in ("_SUCCESS", "_FAILED"):
            try:
                body = out.get_blob_client(f"{name}/{marker}").download_blob().readall()
            except ResourceNotFoundError:
                continue
            return json.loads(body), time.time()
        time.sleep(0.2)
    raise TimeoutError(f"no marker for {name} within {timeout:.0f}s")


def _run(blob_service, name: str, body: bytes, timeout: float) -> tuple[dict, float]:
    blob_service.get_blob_client("batch-input", name).upload_blob(body, overwrite=True)
    uploaded = time.time()
    marker, seen = _wait_marker(blob_service, name, timeout)
    if marker.get("kind") != "success":
        raise RuntimeError(f"{name}: {marker.get('code')}: {marker.get('message')}")
    return marker, seen - uploaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)

    import requests
    from azure.data.tables import TableServiceClient
    from azure.storage.blob import BlobServiceClient

    workdir = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f} at start")
    started: list[Service] = []
    try:
        key = secrets.token_hex(16)
        azurite = start_azurite(workdir)
        started.append(azurite)
        reco = start_recoservice(workdir / "recoservice", keys=[key], demo=True,
                                 extra_args=["--allow-blob-host", "127.0.0.1"])
        started.append(reco)
        from devhost.run import _demo_model_id

        base = str(reco.extra["base_url"])
        model_id = _demo_model_id(base, key)
        settings = app_settings(azurite, reco, key, model_id)
        settings["DEVHOST_MASTER_KEY"] = fkey = secrets.token_hex(16)
        settings["BATCH_CACHE_TABLE"] = TABLE
        devhost = start_devhost(REPO_ROOT, workdir / "devhost", settings)
        started.append(devhost)
        connection = settings["AzureWebJobsStorage"]
        blob_service = BlobServiceClient.from_connection_string(connection)
        for container in ("batch-input", "batch-output", "batch-work"):
            blob_service.create_container(container)
        catalog = requests.get(f"{base}/models/{model_id}/catalog", params={"$top": 1000},
                               headers={"Ocp-Apim-Subscription-Key": key}, timeout=60).json()
        item_ids = [item["id"] for item in catalog["value"]]
        rng = random.Random(args.seed)
        seeds = [rng.sample(item_ids, rng.randint(1, 3)) for _ in range(args.requests)]
        reqs = [{"SeedItems": s} for s in seeds]

        def body(cached: bool) -> bytes:
            return json.dumps({"requests": reqs, "job": {"cache": cached}},
                              separators=(",", ":")).encode()

        _, plain_s = _run(blob_service, "plain.json", body(False), args.timeout)
        marker, cached_s = _run(blob_service, "cached.json", body(True), args.timeout)
        filled = marker["cache"]
        table = TableServiceClient.from_connection_string(connection).get_table_client(TABLE)
        stamps = [e.metadata["timestamp"]
                  for e in table.list_entities(select=["RowKey", "Timestamp"])]
        span = (max(stamps) - min(stamps)).total_seconds() if stamps else 0.0
        distinct = len({frozenset(s) for s in seeds})
        print(f"{args.requests:,} requests ({distinct:,} distinct keys), "
              f"{len(marker['chunks'])} chunks")
        print(f"  run without cache {plain_s:.1f} s; with cache {cached_s:.1f} s "
              f"(+{cached_s - plain_s:.1f} s)")
        print(f"  marker cache: rows {filled['rows']:,}, failed {filled['failed']:,}; "
              f"table holds {len(stamps):,} rows")
        print(f"  fill rate: {len(stamps) / span if span else float('nan'):,.0f} rows/s while "
              f"writing ({span:.1f} s from first to last row); "
              f"{filled['rows'] / cached_s:,.0f} rows/s over the whole run")

        picks = [rng.choice(seeds) for _ in range(args.lookups)]
        partition = cache.partition_key(model_id, None)
        local = threading.local()

        def session() -> requests.Session:
            if not hasattr(local, "s"):
                local.s = requests.Session()
                local.s.headers["x-functions-key"] = fkey
            return local.s

        api = f"http://127.0.0.1:{devhost.port}/api/recommendations"

        def http_call(pick: list[str]):
            def call() -> None:
                resp = session().get(api, params={"items": ",".join(pick)}, timeout=30)
                if resp.status_code != 200:
                    raise RuntimeError(f"lookup answered {resp.status_code}: {resp.text}")
            return call

        def direct_call(pick: list[str]):
            def call() -> None:
                table.get_entity(partition, cache.item_key(pick))
            return call

        _timed([http_call(p) for p in picks[:50]], 1)  # warm up both paths
        _timed([direct_call(p) for p in picks[:50]], 1)
        print(f"  lookups of {args.lookups:,} keys, latency ms (p50 / p99), "
              f"throughput lookups/s:")
        for threads in (1, THREADS):
            figures = {}
            for label, make in (("HTTP", http_call), ("direct", direct_call)):
                began = time.perf_counter()
                times = _timed([make(p) for p in picks], threads)
                rate = len(picks) / (time.perf_counter() - began)
                figures[label] = (statistics.median(times), _pct(times, 0.99), rate)
            (h50, h99, hr), (d50, d99, dr) = figures["HTTP"], figures["direct"]
            print(f"    {threads} thread{'s' if threads > 1 else ''}: HTTP {h50:.1f} / "
                  f"{h99:.1f} ({hr:,.0f}/s); direct {d50:.1f} / {d99:.1f} ({dr:,.0f}/s); "
                  f"ratio p50 {h50 / d50:.1f}x")
        load = os.getloadavg()
        print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at end "
              f"({datetime.now().date()})")
        return 0
    finally:
        for svc in reversed(started):
            svc.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
