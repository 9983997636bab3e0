"""Benchmark: the whole pipeline against in-process scoring, in one run.

Prints figures; it is not a test. In the same run it measures

1. in-process SAR scoring: ``recoservice.scoring.Scorer.recommend_items`` on the demo model
   (built here in a temporary state folder exactly as ``serve --demo`` builds it) for the
   same requests the pipeline gets: the reference rate;
2. the pipeline: a seed ``.json`` dropped into ``batch-input`` of a real Azurite, run by
   devhost against a real recoservice (``--demo``), until the ``_SUCCESS`` marker appears;
   the rate is requests / (marker written - upload finished). Per-phase times come from the
   marker: prepare (run start to first chunk start), chunks (first chunk start to last chunk
   end), merge (last chunk end to the marker), and the trigger delay (upload to run start);
3. the ratio pipeline / in-process for each size.

Usage: ``.venv/bin/python bench/end_to_end.py [--requests 100000,1000000] [--seed 7]
[--workdir DIR] [--keep]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
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
from recobatch import naming  # noqa: E402


def seed_lists(item_ids: list[str], count: int, seed: int) -> list[list[str]]:
    """``count`` item-to-item requests of 1-3 distinct seed items each (fixed seed)."""
    rng = random.Random(seed)
    return [rng.sample(item_ids, rng.randint(1, 3)) for _ in range(count)]


def in_process_rate(requests: list[list[str]], workdir: Path) -> tuple[float, list[str]]:
    """Requests/s of ``Scorer.recommend_items`` on the demo model; also its item ids."""
    from recoservice.demo import ensure_demo
    from recoservice.scoring import Scorer
    from recoservice.state import State

    state = State(workdir)
    model_id = ensure_demo(state)
    scorer = Scorer(state)
    scorer.recommend_items(model_id, None, requests[:100], 10)  # load the build once
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(requests), 50_000):
        scorer.recommend_items(model_id, None, requests[start:start + 50_000], 10)
    in_process_rate.cpu_s = time.process_time() - cpu  # type: ignore[attr-defined]
    return len(requests) / (time.perf_counter() - started), list(scorer.load(model_id, None)
                                                               .item_ids)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stamp(text: str | None) -> float | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None


def run_pipeline(blob_service, name: str, body: bytes, timeout: float,
                 services: dict[str, int] | None = None) -> dict:
    """Upload ``body`` as ``name`` and wait for its marker; return timings from the marker,
    and the CPU seconds each of ``services`` (name: pid) spent from the upload to the marker."""
    from azure.core.exceptions import ResourceNotFoundError

    services = services or {}
    outputs = blob_service.get_container_client("batch-output")
    cpu_before = {svc: cpu_seconds(pid) for svc, pid in services.items()}
    uploaded_at = time.time()
    blob_service.get_blob_client("batch-input", name).upload_blob(body, overwrite=True)
    uploaded = time.time()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for kind, blob in (("_SUCCESS", naming.success_marker_blob(name)),
                           ("_FAILED", naming.failed_marker_blob(name))):
            try:
                marker = json.loads(outputs.get_blob_client(blob).download_blob().readall())
            except ResourceNotFoundError:
                continue
            seen = time.time()
            cpu = {svc: cpu_seconds(pid) - cpu_before[svc] for svc, pid in services.items()}
            chunks = marker.get("chunks") or []
            starts = [s for s in (_stamp(c.get("startedAt")) for c in chunks) if s]
            ends = [e for e in (_stamp(c.get("endedAt")) for c in chunks) if e]
            run_start, written = _stamp(marker.get("startedAt")), _stamp(marker.get("writtenAt"))
            return {
                "kind": kind, "code": marker.get("code"), "message": marker.get("message"),
                "chunks": len(chunks), "upload_s": uploaded - uploaded_at,
                "wall_s": (written or seen) - uploaded,
                "trigger_s": (run_start - uploaded) if run_start else None,
                "prepare_s": (min(starts) - run_start) if starts and run_start else None,
                "chunks_s": (max(ends) - min(starts)) if starts and ends else None,
                "merge_s": (written - max(ends)) if ends and written else None,
                "cpu": cpu,
                "timeline": [(c.get("chunk") or c.get("name"), _stamp(c.get("startedAt")),
                              _stamp(c.get("endedAt"))) for c in chunks],
                "uploaded": uploaded,
            }
        time.sleep(0.2)
    raise TimeoutError(f"no marker for {name} within {timeout:.0f}s")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", default="100000,1000000",
                        help="comma-separated pipeline sizes (requests)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--window", type=int, default=1,
                        help="RECO_MAX_CONCURRENT_JOBS: chunks in flight (the service still "
                             "runs one job at a time and answers 409 to the others)")
    parser.add_argument("--timeline", action="store_true",
                        help="print each chunk's job start and end")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.requests.split(",") if s.strip()]

    from azure.storage.blob import BlobServiceClient

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    workdir.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    print(f"window {args.window} chunk(s) in flight; machine: {os.cpu_count()} cores, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start")
    started: list[Service] = []
    try:
        # The in-process reference uses the same demo model and the same requests.
        _, item_ids = in_process_rate([["x"]], workdir / "inproc")
        key = secrets.token_hex(16)
        azurite = start_azurite(workdir)
        started.append(azurite)
        reco = start_recoservice(workdir / "recoservice", keys=[key], demo=True,
                                 extra_args=["--allow-blob-host", "127.0.0.1"])
        started.append(reco)
        from devhost.run import _demo_model_id

        model_id = _demo_model_id(str(reco.extra["base_url"]), key)
        settings = app_settings(azurite, reco, key, model_id)
        settings["DEVHOST_MASTER_KEY"] = secrets.token_hex(16)
        settings["RECO_MAX_CONCURRENT_JOBS"] = str(args.window)
        devhost = start_devhost(REPO_ROOT, workdir / "devhost", settings)
        started.append(devhost)
        blob_service = BlobServiceClient.from_connection_string(settings["AzureWebJobsStorage"])
        for container in ("batch-input", "batch-output", "batch-work"):
            blob_service.create_container(container)

        rows = []
        for size in sizes:
            requests = seed_lists(item_ids, size, args.seed + size)
            inproc, _ = in_process_rate(requests, workdir / "inproc")
            body = json.dumps({"requests": [{"SeedItems": s} for s in requests]},
                              separators=(",", ":")).encode()
            result = run_pipeline(blob_service, f"bench-{size}.json", body, args.timeout,
                                  {"azurite": azurite.proc.pid, "recoservice": reco.proc.pid,
                                   "devhost": devhost.proc.pid})
            rate = size / result["wall_s"]
            rows.append((size, len(body), inproc, rate, result))
            print(f"{size:>9,} requests ({len(body) / 1e6:.1f} MB): in-process "
                  f"{inproc:,.0f} req/s; pipeline {rate:,.0f} req/s "
                  f"({result['wall_s']:.1f} s, {result['kind']}, {result['chunks']} chunks); "
                  f"ratio {rate / inproc:.3f}")
            print(f"          phases (s): trigger {_fmt(result['trigger_s'])}, prepare "
                  f"{_fmt(result['prepare_s'])}, chunks {_fmt(result['chunks_s'])}, merge "
                  f"{_fmt(result['merge_s'])}")
            if args.timeline:
                print("          chunks (s after upload, job start - output there): " + ", ".join(
                    f"{name}: {start - result['uploaded']:.1f}-{end - result['uploaded']:.1f}"
                    for name, start, end in result["timeline"] if start and end))
            inproc_cpu = in_process_rate.cpu_s  # type: ignore[attr-defined]
            print("          CPU s per 100k requests (upload to marker): " + ", ".join(
                f"{svc} {cpu * 1e5 / size:.2f}" for svc, cpu in result["cpu"].items())
                + f"; total {sum(result['cpu'].values()) * 1e5 / size:.2f}; in-process "
                f"scoring {inproc_cpu * 1e5 / size:.2f}")
            if result["kind"] != "_SUCCESS":
                print(f"          {result['code']}: {result['message']}")
        load = os.getloadavg()
        print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at end")
        return 0 if all(r[4]["kind"] == "_SUCCESS" for r in rows) else 1
    finally:
        for svc in reversed(started):
            svc.stop()
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
