"""Benchmark: SAR fit and item-to-item scoring in process, and against Microsoft Recommenders.

Prints figures; it is not a test. Part 1 fits ``recoservice.sar.SarModel`` on synthetic usage
(``recoservice.synth.generate``: power-law popularity, category clusters) and scores 100,000
item-to-item requests with 1–3 seeds each, for the exact model and for top-M pruned ones:
fit time, requests/s, peak memory, and agreement of pruned lists with the exact ones. Part 2 runs
``SARSingleNode`` (PyPI ``recommenders==1.2.1``) on the same usage and seeds in its own venv
``bench/.venv-sar`` (created here when missing) and compares top-k lists and speed. Part 3
times a batch job through Azurite and recoservice; part 4 compares single-call throughput of
one recoservice with two replicas on one PostgreSQL database behind a round-robin client.

Usage: ``.venv/bin/python bench/recoservice_scoring.py [--items 20000] [--users 50000]
[--requests 100000] [--neighbors 0,200,500] [--no-reference] [--no-batch] [--no-replicas]``
"""

from __future__ import annotations

import argparse
import glob
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from recoservice.sar import EVENT_WEIGHTS, SarModel, SarParams  # noqa: E402

REFERENCE_VENV = BENCH / ".venv-sar"
REFERENCE_SCRIPT = BENCH / "sar_reference" / "run_sar.py"
# SARSingleNode needs only these; recommenders' full dependency list (cornac, scikit-surprise,
# transformers, lightgbm, ...) serves other algorithms and needs compilers, so --no-deps.
REFERENCE_PACKAGES = (["--no-deps", "recommenders==1.2.1"], ["numpy<2", "pandas>2,<3", "scipy"])


@dataclass
class Usage:
    users: np.ndarray
    items: np.ndarray
    times: np.ndarray
    weights: np.ndarray
    n_users: int
    n_items: int


# ------------------------------------------------------------------ data
def synthetic_usage(n_items: int, n_users: int, seed: int) -> Usage:
    """Usage events from ``recoservice.synth`` as index arrays."""
    from recoservice import synth

    _, rows = synth.generate(n_items, n_users, seed)
    user_ids, item_ids, stamps, events = (np.asarray(col) for col in zip(*rows, strict=True))
    _, users = np.unique(user_ids, return_inverse=True)
    # Item ids are SYN-<index>; keep that index so items without events keep their place.
    items = np.char.lstrip(np.char.replace(item_ids, "SYN-", ""), "0")
    items = np.where(items == "", "0", items).astype(np.int64)
    times = np.char.rstrip(stamps, "Z").astype("datetime64[s]").astype(np.int64).astype(float)
    weights = np.vectorize(EVENT_WEIGHTS.__getitem__, otypes=[float])(events)
    return Usage(users, items, times, weights, int(users.max()) + 1, n_items)


def make_requests(usage: Usage, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` requests of 1–3 distinct seeds, drawn like traffic: in proportion to item usage."""
    rng = np.random.default_rng(seed)
    count = rng.integers(1, 4, n)
    seeds = usage.items[rng.integers(0, len(usage.items), (n, 3))]
    for _ in range(20):  # redraw rows whose used prefix repeats an item (few rows, few rounds)
        dup = ((seeds[:, 1] == seeds[:, 0]) & (count > 1)) | (
            ((seeds[:, 2] == seeds[:, 0]) | (seeds[:, 2] == seeds[:, 1])) & (count > 2))
        if not dup.any():
            break
        seeds[dup] = usage.items[rng.integers(0, len(usage.items), (int(dup.sum()), 3))]
    indices = seeds[np.arange(3) < count[:, None]]
    return np.concatenate(([0], np.cumsum(count))), indices


# ------------------------------------------------------------------ our engine
def fit(usage: Usage, params: SarParams) -> tuple[SarModel, float]:
    started = time.perf_counter()
    model = SarModel.fit(usage.users, usage.items, usage.times, usage.weights, usage.n_users,
                         usage.n_items, params)
    return model, time.perf_counter() - started


def score(model: SarModel, indptr: np.ndarray, indices: np.ndarray, k: int, repeat: int):
    """Best of ``repeat`` timed runs (wall, CPU), then one traced run for the allocation peak."""
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        result = model.recommend_items(indptr, indices, k, return_backfill=True)
        best = min(best, time.perf_counter() - started)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    tracemalloc.start()
    model.recommend_items(indptr, indices, k)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, best, best_cpu, peak


def scored_only(idx: np.ndarray, backfilled: np.ndarray) -> np.ndarray:
    return np.where(backfilled, -1, idx)


def agreement(ours: np.ndarray, ref: np.ndarray, ours_score=None, ref_score=None) -> dict:
    """Identical lists, mean overlap of the item sets, and lists equal up to tie order."""
    same = (ours == ref).all(axis=1)
    hits = (ours[:, :, None] == ref[:, None, :]) & (ours[:, :, None] >= 0)
    size = np.maximum((ours >= 0).sum(axis=1), (ref >= 0).sum(axis=1))
    overlap = np.where(size > 0, hits.any(axis=2).sum(axis=1) / np.maximum(size, 1), 1.0)
    out = {"identical": float(same.mean()), "overlap": float(overlap.mean())}
    if ours_score is not None:
        # Same score sequence: the lists differ only in how ties (at the k-th place) were broken.
        tied = np.isclose(ours_score, ref_score, rtol=1e-5, atol=1e-7).all(axis=1)
        out["same_scores"] = float((tied & ((ours >= 0) == (ref >= 0)).all(axis=1)).mean())
    return out


# ------------------------------------------------------------------ reference
def ensure_reference_venv() -> Path:
    """Create ``bench/.venv-sar`` with recommenders 1.2.1 unless it already imports."""
    python = REFERENCE_VENV / "bin" / "python"
    check = [str(python), "-c", "from recommenders.models.sar.sar_singlenode import SARSingleNode"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    candidates = sorted(glob.glob("/root/.pyenv/versions/3.11.*/bin/python"))
    base = candidates[-1] if candidates else sys.executable
    print(f"creating {REFERENCE_VENV} with {base} (pip install recommenders==1.2.1) ...")
    subprocess.run([base, "-m", "venv", str(REFERENCE_VENV)], check=True)
    for packages in REFERENCE_PACKAGES:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *packages], check=True,
                       capture_output=True, text=True, timeout=1200)
    subprocess.run(check, check=True, capture_output=True, text=True)
    return python


def run_reference(python: Path, usage: Usage, indptr, indices, params: SarParams, k: int):
    with tempfile.TemporaryDirectory(prefix="sar-ref-") as tmp:
        work = Path(tmp)
        pairs = np.unique(usage.users * np.int64(usage.n_items) + usage.items)
        np.savez(work / "usage.npz", user=pairs // usage.n_items, item=pairs % usage.n_items)
        np.savez(work / "seeds.npz", indptr=indptr, indices=indices)
        (work / "params.json").write_text(json.dumps(
            {"similarity": params.similarity, "threshold": params.support_threshold, "k": k,
             "block": 1000}))
        started = time.perf_counter()
        proc = subprocess.run([str(python), str(REFERENCE_SCRIPT), str(work)],
                              capture_output=True, text=True)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"reference run failed:\n{proc.stderr[-3000:]}")
        with np.load(work / "result.npz") as res:
            out = {name: res[name] for name in res.files}
        out["wall_seconds"] = wall
        return out


# ------------------------------------------------------------------ through a batch job
def batch_job_figures(n_items: int, n_users: int, seed: int, indptr, indices, k: int) -> None:
    """Time one batch job end to end: Azurite + recoservice, build, submit, poll, read output."""
    import uuid

    import requests
    from _jobs import batch_job_body
    from azure.storage.blob import BlobServiceClient

    from devhost.services import start_azurite, start_recoservice
    from recoservice import synth

    key = "bench-" + uuid.uuid4().hex  # a throwaway local key, never printed
    headers = {"Ocp-Apim-Subscription-Key": key}
    with tempfile.TemporaryDirectory(prefix="reco-bench-") as tmp:
        azurite = start_azurite(Path(tmp) / "azurite")
        reco = start_recoservice(Path(tmp) / "reco", keys=[key], demo=False,
                                 extra_args=["--allow-blob-host", "127.0.0.1"])
        try:
            base = str(reco.extra["base_url"])

            def wait(op_url: str, timeout: float = 1800) -> dict:
                deadline = time.monotonic() + timeout
                while True:
                    op = requests.get(op_url, headers=headers, timeout=30).json()
                    if op["status"] in ("Succeeded", "Failed", "Cancelled"):
                        return op
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"operation still {op['status']} after {timeout}s")
                    time.sleep(0.2)

            catalog, usage = synth.generate(n_items, n_users, seed)
            model_id = requests.post(f"{base}/models", json={"modelName": "bench"},
                                     headers=headers, timeout=30).json()["id"]
            started = time.perf_counter()
            for what, rows in (("catalog", catalog), ("usage", usage)):
                upload_headers = {**headers, "Content-Type": "application/octet-stream"}
                resp = requests.post(f"{base}/models/{model_id}/{what}", data=synth.to_csv(rows),
                                     headers=upload_headers, timeout=600)
                resp.raise_for_status()
            upload_s = time.perf_counter() - started
            started = time.perf_counter()
            resp = requests.post(f"{base}/models/{model_id}/builds", headers=headers, timeout=60,
                                 json={"description": "bench", "buildType": "sar"})
            resp.raise_for_status()
            op = wait(resp.headers["Operation-Location"])
            build_s = time.perf_counter() - started
            if op["status"] != "Succeeded":
                raise RuntimeError(f"build {op['status']}: {op.get('message')}")

            # As many requests as fit the 2 MB input limit.
            seeds = [[f"SYN-{i:06d}" for i in indices[indptr[r]:indptr[r + 1]]]
                     for r in range(len(indptr) - 1)]
            doc = {"requests": [{"SeedItems": s} for s in seeds]}
            while len(json.dumps(doc)) > 2_000_000:
                doc["requests"] = doc["requests"][: int(len(doc["requests"]) * 0.9)]
            n_req = len(doc["requests"])
            service = BlobServiceClient.from_connection_string(
                str(azurite.extra["connection_string"]))
            container = service.create_container("bench")
            container.upload_blob("job/input.json", json.dumps(doc).encode(), overwrite=True)

            body = batch_job_body(service, container, model_id, numberOfResults=k,
                                  minimalScore=0.0)
            started = time.perf_counter()
            resp = requests.post(f"{base}/batchjobs", json=body, headers=headers, timeout=60)
            resp.raise_for_status()
            op = wait(resp.headers["Operation-Location"])
            job_s = time.perf_counter() - started
            if op["status"] != "Succeeded":
                raise RuntimeError(f"batch job {op['status']}: {op.get('message')}")
            output = container.download_blob("job/output.json").readall()
            results = json.loads(output)["results"]
            listed = sum(len(r["recommendations"]) for r in results)
        finally:
            reco.stop()
            azurite.stop()
    print(f"upload catalog+usage {upload_s:.1f}s, build {build_s:.1f}s")
    print(f"batch job: {n_req:,} requests ({len(json.dumps(doc)):,} bytes input) -> "
          f"{len(results):,} results, {listed:,} recommendations, {len(output):,} bytes output")
    print(f"submit to Succeeded {job_s:.1f}s = {n_req / job_s:,.0f} requests/s end to end "
          "(includes the poll interval of 0.2s)")


# ------------------------------------------------------------------ replicas
def replica_figures(n_items: int, n_users: int, seed: int, indptr, indices, k: int,
                    clients: int = 8, seconds: float = 10.0) -> None:
    """Single calls (``recommend/item``) per second: one recoservice, then two replicas on one
    PostgreSQL database and one Azurite artifact container, ``clients`` client threads sending
    round-robin over the replicas."""
    import itertools
    import os
    import shutil
    import threading
    import uuid

    import requests

    from devhost.services import start_azurite, start_postgres, start_recoservice
    from recoservice import synth

    key = "bench-" + uuid.uuid4().hex  # a throwaway local key, never printed
    headers = {"Ocp-Apim-Subscription-Key": key}
    seeds = [",".join(f"SYN-{i:06d}" for i in indices[indptr[r]:indptr[r + 1]])
             for r in range(min(len(indptr) - 1, 20_000))]
    with tempfile.TemporaryDirectory(prefix="reco-bench-") as tmp:
        azurite = start_azurite(Path(tmp) / "azurite")
        postgres = start_postgres(Path(tmp) / "postgres")
        env = {"PGPASSWORD": postgres.extra["password"],
               "RECOSERVICE_DATABASE": postgres.extra["url"],
               "RECOSERVICE_ARTIFACTS_CONNECTION": str(azurite.extra["connection_string"])}
        replicas = []
        try:
            replicas.append(start_recoservice(Path(tmp) / "reco0", keys=[key], demo=False,
                                              env=env))
            base = str(replicas[0].extra["base_url"])
            catalog, usage = synth.generate(n_items, n_users, seed)
            model_id = requests.post(f"{base}/models", json={"modelName": "bench"},
                                     headers=headers, timeout=30).json()["id"]
            for what, rows in (("catalog", catalog), ("usage", usage)):
                requests.post(f"{base}/models/{model_id}/{what}", data=synth.to_csv(rows),
                              headers={**headers, "Content-Type": "application/octet-stream"},
                              timeout=600).raise_for_status()
            resp = requests.post(f"{base}/models/{model_id}/builds", headers=headers,
                                 json={"buildType": "sar"}, timeout=60)
            resp.raise_for_status()
            while requests.get(resp.headers["Operation-Location"], headers=headers,
                               timeout=30).json()["status"] not in ("Succeeded", "Failed"):
                time.sleep(0.5)
            replicas.append(start_recoservice(Path(tmp) / "reco1", keys=[key], demo=False,
                                              env=env))
            bases = [str(r.extra["base_url"]) for r in replicas]

            def rate(targets: list[str]) -> float:
                for target in targets:  # load the build (from the container on the second)
                    requests.get(f"{target}/models/{model_id}/recommend/item", headers=headers,
                                 params={"itemIds": seeds[0], "numberOfResults": k},
                                 timeout=120).raise_for_status()
                done = [0] * clients
                stop = time.monotonic() + seconds

                def client(n: int) -> None:
                    session = requests.Session()
                    urls = itertools.cycle(targets[n % len(targets):] + targets[:n % len(targets)])
                    for i in itertools.count(n * 997):
                        if time.monotonic() > stop:
                            return
                        session.get(f"{next(urls)}/models/{model_id}/recommend/item",
                                    params={"itemIds": seeds[i % len(seeds)],
                                            "numberOfResults": k},
                                    headers=headers, timeout=30).raise_for_status()
                        done[n] += 1

                threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
                started = time.monotonic()
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                return sum(done) / (time.monotonic() - started)

            one = rate(bases[:1])
            two = rate(bases)
        finally:
            for reco in replicas:
                reco.stop()
            postgres.stop()
            shutil.rmtree(postgres.extra["data_dir"], ignore_errors=True)
            azurite.stop()
    print(f"{clients} client threads, {seconds:.0f}s each, k={k}, {os.cpu_count()} CPUs: "
          f"one replica {one:,.0f} calls/s, two replicas round-robin {two:,.0f} calls/s "
          f"({two / one:.2f}x); both on PostgreSQL (every call reads the model's active build "
          "there)")


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--neighbors", default="0,200,500",
                        help="comma-separated max_neighbors values; 0 = exact (the baseline)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--no-batch", action="store_true",
                        help="skip part 3 (a batch job through Azurite and recoservice)")
    parser.add_argument("--no-replicas", action="store_true",
                        help="skip part 4 (one recoservice vs two replicas on PostgreSQL)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    usage = synthetic_usage(args.items, args.users, args.seed)
    indptr, indices = make_requests(usage, args.requests, args.seed + 1)
    print(f"data: {usage.n_items:,} items, {usage.n_users:,} users, {len(usage.items):,} events; "
          f"{args.requests:,} requests, {len(indices):,} seeds "
          f"(generated in {time.perf_counter() - started:.1f}s)")

    params = SarParams()  # jaccard, support threshold 3, backfilling on
    exact: dict | None = None
    timings: dict[int, float] = {}
    cpu_timings: dict[int, float] = {}
    lists_by_m: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    print(f"\n[1] recoservice.sar, k={args.k}, {params.similarity}, "
          f"threshold {params.support_threshold}")
    print(f"{'M':>6} {'fit s':>7} {'sim nnz':>10} {'score s':>8} {'req/s':>9} {'cpu s':>6} "
          f"{'req/cpu-s':>10} {'peak MB':>8} {'=exact':>7} {'overlap':>8} {'1-seed =':>9}")
    single = np.diff(indptr) == 1
    for m in (int(x) for x in args.neighbors.split(",")):
        model, fit_s = fit(usage, SarParams(max_neighbors=m))
        (idx, sc, fill), score_s, cpu_s, peak = score(model, indptr, indices, args.k,
                                                      args.repeat)
        lists = scored_only(idx, fill)
        timings[m] = score_s
        cpu_timings[m] = cpu_s
        lists_by_m[m] = (lists, sc)
        if exact is None:
            exact = {"idx": lists, "score": sc, "backfilled": int(fill.sum()), "seconds": score_s}
        agree = agreement(lists, exact["idx"])
        single_same = float((lists[single] == exact["idx"][single]).all(axis=1).mean())
        print(f"{m:>6} {fit_s:>7.2f} {model.similarity().nnz:>10,} {score_s:>8.2f} "
              f"{args.requests / score_s:>9,.0f} {cpu_s:>6.2f} {args.requests / cpu_s:>10,.0f} "
              f"{peak / 2**20:>8.0f} {agree['identical']:>7.3f} {agree['overlap']:>8.3f} "
              f"{single_same:>9.3f}")
    assert exact is not None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process max RSS: {rss:,.0f} MB; backfilled entries (first model): "
          f"{exact['backfilled']:,} of {args.requests * args.k:,}")
    print("score s: best wall time of the runs; cpu s: CPU time of this process (steadier on a "
          "shared machine); peak MB: tracemalloc peak while scoring")
    print("=exact: identical scored top-k vs the first model; 1-seed =: same, one-seed requests")

    if not args.no_reference:
        reference_figures(args, usage, indptr, indices, params, lists_by_m, timings,
                          cpu_timings)
    if not args.no_batch:
        print("\n[3] through a recoservice batch job (Azurite + recoservice over HTTP)")
        batch_job_figures(args.items, args.users, args.seed, indptr, indices, args.k)
    if not args.no_replicas:
        print("\n[4] single calls: one recoservice vs two replicas (PostgreSQL + Azurite)")
        replica_figures(args.items, args.users, args.seed, indptr, indices, args.k)


def reference_figures(args, usage: Usage, indptr, indices, params: SarParams,
                      lists_by_m: dict[int, tuple[np.ndarray, np.ndarray]],
                      timings: dict[int, float], cpu_timings: dict[int, float]) -> None:
    print("\n[2] Microsoft Recommenders SARSingleNode (recommenders 1.2.1), same usage and seeds")
    try:
        python = ensure_reference_venv()
    except (subprocess.SubprocessError, OSError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        print(f"reference skipped: could not install recommenders ({exc}) {detail[-800:]}")
        return
    ref = run_reference(python, usage, indptr, indices, params, args.k)
    ref_idx = np.where(ref["score"] > 0, ref["idx"], -1)  # it lists zero-score items too
    ref_score = np.where(ref_idx >= 0, ref["score"], 0.0)
    ref_s = float(ref["score_seconds"])
    print(f"reference fit {float(ref['fit_seconds']):.2f}s, scoring {ref_s:.2f}s "
          f"({args.requests / ref_s:,.0f} req/s), max RSS {float(ref['max_rss_mb']):,.0f} MB")
    ref_cpu = float(ref["score_cpu_seconds"])
    print(f"reference scoring CPU time {ref_cpu:.2f}s")
    print(f"{'M':>6} {'identical':>10} {'same scores':>12} {'overlap':>8} {'speed ratio':>12} "
          f"{'cpu ratio':>10}")
    for m, (ours_idx, ours_sc) in lists_by_m.items():
        ours_score = np.where(ours_idx >= 0, ours_sc, 0.0)
        agree = agreement(ours_idx, ref_idx, ours_score, ref_score)
        print(f"{m:>6} {agree['identical']:>10.4f} {agree['same_scores']:>12.4f} "
              f"{agree['overlap']:>8.4f} {ref_s / timings[m]:>11.1f}x "
              f"{ref_cpu / cpu_timings[m]:>9.1f}x")
    print(f"identical: same top-{args.k} lists; same scores: equal score sequences (lists differ "
          "only in tie order); speed ratio: reference scoring wall time / ours (cpu: CPU time)")


if __name__ == "__main__":
    main()
