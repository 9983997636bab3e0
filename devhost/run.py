"""The one-command local run: Azurite + recoservice (--demo) + devhost, wired together.

``python -m devhost.run`` (``make run``) starts the three services with settings that point at
each other, prints where to drop files and how to call the HTTP API, and runs until Ctrl+C.
``python -m devhost.run --demo`` (``make demo``) also submits ``samples/input.json`` (the v4
batch documentation's example), ``samples/surface.json`` and a generated
``samples/large.jsonl`` (> 5 MB) against the ``demo`` model (the Microsoft Store catalog),
shows progress until every marker appears, prints the ``input.json`` manifest, the first
results with seed and item names, and ``errors.txt``, then stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import sys
import time
from pathlib import Path

import requests

from devhost.services import REPO_ROOT, Service, start_azurite, start_devhost, start_recoservice

RUN_DIR = REPO_ROOT / ".run"
SAMPLES = REPO_ROOT / "samples"


def write_private(path: Path, text: str) -> None:
    """Write a secret-bearing file (settings with keys, the function key) readable by its owner
    only: created with mode 0600 by ``os.open``, so it is never readable by others, not even
    between its creation and a later chmod. An existing file is narrowed before it is
    rewritten."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a file left by an older version may be wider
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            fd = -1
            out.write(text)
    finally:
        if fd >= 0:
            os.close(fd)


def _demo_model_id(base_url: str, key: str) -> str:
    resp = requests.get(f"{base_url}/models", headers={"Ocp-Apim-Subscription-Key": key},
                        timeout=30)
    resp.raise_for_status()
    for model in resp.json()["models"]:
        if model["name"] == "demo":
            return str(model["id"])
    raise RuntimeError("recoservice --demo did not create the demo model")


def _demo_item_ids(base_url: str, key: str, model_id: str, count: int) -> list[str]:
    resp = requests.get(f"{base_url}/models/{model_id}/catalog",
                        params={"$top": count}, headers={"Ocp-Apim-Subscription-Key": key},
                        timeout=30)
    resp.raise_for_status()
    return [item["id"] for item in resp.json()["value"]]


def app_settings(azurite: Service, reco: Service, key: str, model_id: str) -> dict[str, str]:
    """The function app's settings for a local run (what local.settings.json would hold)."""
    return {
        "AzureWebJobsStorage": str(azurite.extra["connection_string"]),
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "TASKHUB_NAME": "RecobatchHub",
        "RECO_ENDPOINT": str(reco.extra["base_url"]),
        "RECO_SUBSCRIPTION_KEY": key,
        "RECO_MODEL_ID": model_id,
        "BATCH_INPUT_CONTAINER": "batch-input",
        "BATCH_OUTPUT_CONTAINER": "batch-output",
        "BATCH_WORK_CONTAINER": "batch-work",
        "POLL_INITIAL_SECONDS": os.environ.get("POLL_INITIAL_SECONDS", "1"),
        "POLL_MAX_SECONDS": os.environ.get("POLL_MAX_SECONDS", "5"),
    }


def write_large_sample(path: Path, item_ids: list[str], min_bytes: int = 5_500_000) -> int:
    """Write a JSON Lines input of more than ``min_bytes`` bytes; returns the request count."""
    rng = random.Random(7)
    count = 0
    size = 0
    with path.open("w", encoding="utf-8") as out:
        while size < min_bytes:
            seeds = rng.sample(item_ids, rng.randint(1, 3))
            line = json.dumps({"SeedItems": seeds}) + "\n"
            out.write(line)
            size += len(line)
            count += 1
    return count


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = int(width * done / total) if total else 0
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def _item_names(reco_base: str, key: str, model_id: str, ids: list[str]) -> dict[str, str]:
    """Catalog names of ``ids`` (unknown ids left out), asked of the service in pieces."""
    names: dict[str, str] = {}
    wanted = list(dict.fromkeys(ids))
    for start in range(0, len(wanted), 50):
        resp = requests.get(f"{reco_base}/models/{model_id}/catalog/items",
                            params={"ids": ",".join(wanted[start:start + 50])},
                            headers={"Ocp-Apim-Subscription-Key": key}, timeout=30)
        resp.raise_for_status()
        names.update((item["id"], item["name"]) for item in resp.json()["value"])
    return names


def _named(item_id: str, names: dict[str, str]) -> str:
    name = names.get(item_id)
    return f"{name} ({item_id})" if name else f"{item_id} (not in the catalog)"


def show_results(outputs, stem: str, names_of, shown: int = 3, top: int = 5) -> None:
    """Print a finished input's results by name up to the ``shown``-th one with
    recommendations (those without are one line each), then its ``errors.txt``."""
    results = json.loads(outputs.get_blob_client(f"{stem}/results.json")
                         .download_blob().readall())["results"]
    errors = outputs.get_blob_client(f"{stem}/errors.txt").download_blob().readall()
    error_lines = errors.decode("utf-8", "replace").splitlines()
    print(f"{stem}: {len(results)} results, {len(error_lines)} lines in errors.txt; "
          f"top {top} of the first results:")
    first, with_recs = [], 0
    for result in results:
        if with_recs == shown:
            break
        first.append(result)
        with_recs += bool(result["recommendations"])
    names = names_of([i for r in first for i in r["request"].get("seedItems") or []])
    for result in first:
        seeds = " + ".join(_named(i, names) for i in result["request"].get("seedItems") or [])
        if not result["recommendations"]:
            print(f"  request {result['index']}: {seeds}: no recommendations")
            continue
        print(f"  request {result['index']}: {seeds}")
        for rec in result["recommendations"][:top]:
            item = rec["items"][0]
            print(f"      {rec['rating']:.3f}  {item['name']} ({item['itemId']})")
    if error_lines:
        print(f"{stem}: errors.txt")
        for line in error_lines[:10]:
            print(f"  {line}")
        if len(error_lines) > 10:
            print(f"  ... {len(error_lines) - 10} more")


def _summary(manifest: dict) -> str:
    """One line of a ``_SUCCESS`` manifest: its counts and chunks."""
    counts = ", ".join(f"{k} {v}" for k, v in (manifest.get("counts") or {}).items())
    chunks = manifest.get("chunks") or []
    return f"{counts}; {len(chunks)} chunk(s)"


def run_demo(blob_service, settings: dict[str, str], devhost: Service, model_id: str,
             key: str, reco_base: str, timeout: float = 600) -> int:
    """Upload the samples, follow the runs to their markers, print what they produced."""
    from azure.core.exceptions import ResourceNotFoundError

    item_ids = _demo_item_ids(reco_base, key, model_id, 500)
    SAMPLES.mkdir(exist_ok=True)
    large = SAMPLES / "large.jsonl"
    n_large = write_large_sample(large, item_ids)
    print(f"generated {large.relative_to(REPO_ROOT)}: {n_large} requests, "
          f"{large.stat().st_size / 1e6:.1f} MB")
    inputs = blob_service.get_container_client("batch-input")
    if not inputs.exists():
        inputs.create_container()
    samples = (SAMPLES / "input.json", SAMPLES / "surface.json", large)
    etags: dict[str, str] = {}
    for path in samples:
        with path.open("rb") as data:
            uploaded = inputs.get_blob_client(path.name).upload_blob(data, overwrite=True)
        etags[path.name] = str(uploaded["etag"]).strip('"')
        print(f"uploaded {path.name} to batch-input")
    outputs = blob_service.get_container_client("batch-output")
    # each input's output folder is named after the whole blob name (recobatch.naming)
    pending = [path.name for path in samples]
    finished: dict[str, tuple[str, dict]] = {}
    deadline = time.monotonic() + timeout
    status_url = f"http://127.0.0.1:{devhost.port}/api/batches"
    while pending and time.monotonic() < deadline:
        for stem in list(pending):
            for marker in ("_SUCCESS", "_FAILED"):
                try:
                    body = outputs.get_blob_client(f"{stem}/{marker}").download_blob().readall()
                except ResourceNotFoundError:
                    continue
                manifest = json.loads(body)
                # A marker left by an earlier `make demo` (same .run/) is not this upload's.
                if str((manifest.get("input") or {}).get("etag") or "").strip('"') \
                        != etags[stem]:
                    continue
                pending.remove(stem)
                finished[stem] = (marker, manifest)
                break
        _show_progress(status_url, settings, pending)
        time.sleep(1)
    print()

    def names_of(ids: list[str]) -> dict[str, str]:
        return _item_names(reco_base, key, model_id, ids)

    for path in samples:
        if path.name not in finished:
            continue
        marker, manifest = finished[path.name]
        print(f"\n{path.name}: {marker}")
        if marker == "_FAILED" or path.name == "input.json":
            print(json.dumps(manifest, indent=2)[:3000])
        else:
            print(f"  {_summary(manifest)}")
        if marker == "_SUCCESS":
            show_results(outputs, path.name, names_of, shown=3 if path != large else 2)
    if pending:
        print(f"\ntimed out waiting for {', '.join(pending)} (devhost log: {devhost.log})")
        return 1
    return 0 if all(m == "_SUCCESS" for m, _ in finished.values()) else 1


def _show_progress(status_url: str, settings: dict[str, str], pending: list[str]) -> None:
    """Best effort: one line with the chunk progress of each run, from devhost's HTTP API."""
    try:
        resp = requests.get(status_url, headers={"x-functions-key": settings["DEVHOST_MASTER_KEY"]},
                            timeout=5)
        if resp.status_code != 200:
            return
        parts = []
        for run in resp.json().get("runs", []):
            chunks = (run.get("customStatus") or {}).get("chunks") or {}
            parts.append(f"{run.get('name', 'run')}: {run.get('runtimeStatus')} "
                         f"{_bar(int(chunks.get('succeeded', 0)), int(chunks.get('total', 0)))}")
        sys.stdout.write("\r  " + "   ".join(parts) + " " * 4)
        sys.stdout.flush()
    except (requests.RequestException, ValueError):
        return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost.run", description=__doc__)
    parser.add_argument("--port", type=int, default=7071, help="devhost HTTP port")
    parser.add_argument("--demo", action="store_true",
                        help="submit the samples, wait for the markers, print, stop")
    parser.add_argument("--workdir", type=Path, default=RUN_DIR)
    args = parser.parse_args(argv)

    from azure.storage.blob import BlobServiceClient

    args.workdir.mkdir(parents=True, exist_ok=True)
    key = os.environ.get("RECO_SUBSCRIPTION_KEY") or secrets.token_hex(16)
    master_key = os.environ.get("DEVHOST_MASTER_KEY") or secrets.token_hex(16)
    started: list[Service] = []
    try:
        azurite = start_azurite(args.workdir)
        started.append(azurite)
        print(f"Azurite      blob endpoint {azurite.extra['blob_endpoint']}")
        # Azurite is on loopback: batch jobs may use it only when it is allowed by name.
        reco = start_recoservice(args.workdir / "recoservice", keys=[key], demo=True,
                                 extra_args=["--allow-blob-host", "127.0.0.1"])
        started.append(reco)
        print(f"recoservice  {reco.extra['base_url']} (docs: "
              f"http://127.0.0.1:{reco.port}/docs)")
        model_id = _demo_model_id(str(reco.extra["base_url"]), key)
        settings = app_settings(azurite, reco, key, model_id)
        settings["DEVHOST_MASTER_KEY"] = master_key
        local_settings = args.workdir / "local.settings.json"
        write_private(local_settings,
                      json.dumps({"IsEncrypted": False, "Values": settings}, indent=2))
        devhost = start_devhost(REPO_ROOT, args.workdir / "devhost", settings, port=args.port)
        started.append(devhost)
        blob_service = BlobServiceClient.from_connection_string(settings["AzureWebJobsStorage"])
        for name in ("batch-input", "batch-output", "batch-work"):
            client = blob_service.get_container_client(name)
            if not client.exists():
                client.create_container()
        api = f"http://127.0.0.1:{args.port}/api"
        key_file = args.workdir / "function.key"
        write_private(key_file, master_key)
        print(f"devhost      {api} (function key in {key_file})")
        print()
        print("Drop a requests file into the 'batch-input' container, e.g.:")
        print("  .venv/bin/python -m recobatch submit samples/input.json --wait")
        print("or start a run over HTTP:")
        print(f"  curl -X POST -H \"x-functions-key: $(cat {key_file})\" {api}/batches "
              "-d '{\"input\": {\"blob\": \"input.json\"}}'")
        print(f"Status page: {api}/ui?code=<the key in {key_file}> (the page then drops it "
              "from the address)")
        print(f"Logs: {args.workdir}/*.log. Ctrl+C stops everything.")
        if args.demo:
            return run_demo(blob_service, settings, devhost, model_id, key,
                            str(reco.extra["base_url"]))
        while all(s.proc.poll() is None for s in started):
            time.sleep(1)
        dead = [s.name for s in started if s.proc.poll() is not None]
        print(f"stopped: {', '.join(dead)} exited (see {args.workdir}/*.log)")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for svc in reversed(started):
            svc.stop()


if __name__ == "__main__":
    sys.exit(main())
