"""Benchmark: recoservice over HTTP, against in-process scoring, in one run.

Prints figures; it is not a test. Starts Azurite and recoservice (``devhost.services``),
uploads synthetic catalog and usage (``recoservice.synth``), builds SAR, then measures:

1. **In-process scoring**: ``SarModel.recommend_items`` on the built model's file, the same
   requests as the batch job, in one call (the ceiling for everything below).
2. **Batch job end to end**: a job with as many requests as fit the 2 MB input limit, from
   submit to ``Succeeded`` (the operation is polled every 50 ms), and its ratio to (1); run
   twice: the first job also loads the build into the service, the second finds it cached.
3. **Single calls**: sequential keep-alive requests on one ``http.client`` connection:
   ``GET /models``, ``GET /models/{id}/recommend/item`` (1–3 seeds, k = 10), and their ratio.

Usage: ``.venv/bin/python bench/recoservice_http.py [--items 20000] [--users 50000]
[--calls 3000] [--no-batch] [--no-single]``
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from _jobs import batch_job_body  # noqa: E402
from recoservice_scoring import make_requests, synthetic_usage  # noqa: E402


class Client:
    """One keep-alive HTTP/1.1 connection (http.client: little client-side overhead)."""

    def __init__(self, base: str, key: str) -> None:
        url = urlsplit(base)
        self.prefix = url.path
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
        self.headers = {"Ocp-Apim-Subscription-Key": key}

    def call(self, method: str, path: str, body: bytes | None = None,
             headers: dict | None = None) -> tuple[int, Any, bytes]:
        for attempt in (1, 2):
            try:
                self.conn.request(method, self.prefix + path, body=body,
                                  headers={**self.headers, **(headers or {})})
                resp = self.conn.getresponse()
                return resp.status, resp.headers, resp.read()
            except (http.client.RemoteDisconnected, ConnectionError):
                # The server closed the idle connection (keep-alive timeout): reconnect once.
                self.conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, doc=None) -> tuple[int, Any, dict]:
        body = None if doc is None else json.dumps(doc).encode()
        status, headers, data = self.call(method, path, body,
                                          {"Content-Type": "application/json"})
        return status, headers, json.loads(data) if data else {}

    def wait(self, op_url: str, poll: float = 0.05) -> dict:
        path = urlsplit(op_url).path[len(self.prefix):]
        while True:
            _, _, op = self.json("GET", path)
            if op["status"] in ("Succeeded", "Failed", "Cancelled"):
                return op
            time.sleep(poll)


def rate(client: Client, paths: list[str], seconds: float) -> tuple[float, int]:
    """Requests/s of sequential GETs over ``paths`` (cycled) for about ``seconds``."""
    for path in paths[:50]:  # warm-up
        client.call("GET", path)
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        status, _, _ = client.call("GET", paths[n % len(paths)])
        assert status == 200, status
        n += 1
    return n / (time.perf_counter() - started), n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=8.0,
                        help="duration of each single-call measurement")
    parser.add_argument("--no-batch", action="store_true")
    parser.add_argument("--no-single", action="store_true")
    args = parser.parse_args(argv)

    from azure.storage.blob import BlobServiceClient

    from devhost.services import start_azurite, start_recoservice
    from recoservice import synth
    from recoservice.sar import SarModel

    usage = synthetic_usage(args.items, args.users, args.seed)
    indptr, indices = make_requests(usage, 100_000, args.seed + 1)
    seeds = [[f"SYN-{i:06d}" for i in indices[indptr[r]:indptr[r + 1]]]
             for r in range(len(indptr) - 1)]
    doc = {"requests": [{"SeedItems": s} for s in seeds]}
    while len(json.dumps(doc)) > 2_000_000:
        doc["requests"] = doc["requests"][: int(len(doc["requests"]) * 0.95)]
    n_req = len(doc["requests"])

    key = "bench-" + uuid.uuid4().hex  # a throwaway local key, never printed
    with tempfile.TemporaryDirectory(prefix="reco-http-bench-") as tmp:
        azurite = start_azurite(Path(tmp) / "azurite")
        reco = start_recoservice(Path(tmp) / "reco", keys=[key], demo=False,
                                 extra_args=["--allow-blob-host", "127.0.0.1",
                                             "--log-level", "warning"])
        try:
            client = Client(str(reco.extra["base_url"]), key)
            catalog, rows = synth.generate(args.items, args.users, args.seed)
            _, _, model = client.json("POST", "/models", {"modelName": "bench"})
            model_id = model["id"]
            for what, data in (("catalog", catalog), ("usage", rows)):
                status, _, _ = client.call("POST", f"/models/{model_id}/{what}",
                                           synth.to_csv(data),
                                           {"Content-Type": "application/octet-stream"})
                assert status == 200, status
            status, headers, _ = client.json("POST", f"/models/{model_id}/builds",
                                             {"description": "bench", "buildType": "sar"})
            op = client.wait(headers["Operation-Location"])
            assert op["status"] == "Succeeded", op
            build_id = op["result"]["buildId"] if "result" in op else None
            print(f"data: {args.items:,} items, {args.users:,} users, {len(rows):,} events; "
                  f"build {build_id}")

            # [1] in-process scoring of the same requests, on the file the service built.
            build_file = next((Path(tmp) / "reco" / "state" / "builds").glob("*.sar.npz"))
            sar = SarModel.load(build_file)
            ptr = np.asarray(indptr[: n_req + 1])
            idx = np.asarray(indices[: ptr[-1]])
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                sar.recommend_items(ptr, idx, 10, return_backfill=True)
                best = min(best, time.perf_counter() - started)
            inproc = n_req / best
            print(f"\n[1] in-process SarModel.recommend_items: {n_req:,} requests in "
                  f"{best:.2f}s = {inproc:,.0f} req/s")

            if not args.no_batch:
                service = BlobServiceClient.from_connection_string(
                    str(azurite.extra["connection_string"]))
                container = service.create_container("bench")
                container.upload_blob("job/input.json", json.dumps(doc).encode())

                body = batch_job_body(service, container, model_id)
                for run in ("first job (loads the build)", "second job (build cached)"):
                    started = time.perf_counter()
                    status, headers, answer = client.json("POST", "/batchjobs", body)
                    assert status == 202, answer
                    op = client.wait(headers["Operation-Location"])
                    job_s = time.perf_counter() - started
                    assert op["status"] == "Succeeded", op
                    output = container.download_blob("job/output.json").readall()
                    results = json.loads(output)["results"]
                    assert len(results) == n_req
                    print(f"\n[2] batch job, {run}: {n_req:,} requests -> {len(output):,} "
                          f"bytes output; submit to Succeeded {job_s:.2f}s = "
                          f"{n_req / job_s:,.0f} req/s = {n_req / job_s / inproc:.2f} of "
                          "in-process scoring")

            if not args.no_single:
                paths = [f"/models/{model_id}/recommend/item?itemIds="
                         + quote(",".join(s), safe=",") + "&numberOfResults=10"
                         for s in seeds[:2000]]
                models_rate, n1 = rate(client, ["/models"], args.seconds)
                item_rate, n2 = rate(client, paths, args.seconds)
                print("\n[3] single calls, sequential keep-alive (one connection):")
                print(f"GET /models                {models_rate:8,.0f} req/s ({n1:,} calls)")
                print(f"GET .../recommend/item     {item_rate:8,.0f} req/s ({n2:,} calls)")
                print(f"ratio recommend/item : /models = {item_rate / models_rate:.2f}")
        finally:
            reco.stop()
            azurite.stop()


if __name__ == "__main__":
    main()
