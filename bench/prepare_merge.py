"""Benchmark: prepare_batch and merge_results on 20, 40 and 200 MB inputs in Azurite.

Starts a private Azurite, writes a seed-format requests file of each size (about 44 bytes a
request: 200 MB is about 4.6 M requests; the same bytes also go to a local file), then runs,
each in its own subprocess so peak RSS is per size and phase:

- ``json.load``: the standard library parsing the same file from local disk, the yardstick
  (the machine is shared, so only ratios measured in the same run mean much);
- ``prepare``: the ``prepare_batch`` activity (stream from Azurite, validate, split, write
  chunks to Azurite);
- ``merge``: the ``merge_results`` activity, fed with synthetic chunk outputs of the shape the
  service writes (one recommendation per request, an error line every 997th request).

Prints MB/s (input MB for json.load and prepare; results MB written for merge), prepare's
ratio to json.load, and peak RSS (``VmHWM``). Targets: prepare at least 2x json.load, peak
RSS < 150 MB, about the same for every size.

Usage: ``python bench/prepare_merge.py [--sizes 20,40,200] [--no-merge]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

INPUT_CONTAINER = "bench-input"
MB = 1_000_000


def _env(connection: str) -> dict[str, str]:
    """App settings for the activities; the endpoint is never contacted by prepare/merge."""
    return {**os.environ, "AzureWebJobsStorage": connection,
            "RECO_ENDPOINT": "http://127.0.0.1:9/recommendations/v4.0",
            "RECO_SUBSCRIPTION_KEY": "bench-not-used", "RECO_MODEL_ID": "bench-model",
            "BATCH_INPUT_CONTAINER": INPUT_CONTAINER, "BATCH_OUTPUT_CONTAINER": "bench-output",
            "BATCH_WORK_CONTAINER": "bench-work"}


def _item(rng: random.Random) -> str:
    return f"{rng.choice('ABCDEFGHJK')}{rng.choice('0123456789')}F-{rng.randrange(100000):05d}"


def generate(service, name: str, target_bytes: int, copy: Path) -> tuple[int, int]:
    """Stream a seed-format file of about ``target_bytes`` into Azurite (and into ``copy``);
    return (bytes, n)."""
    from recobatch.storage import BlobWriter, ensure_container

    ensure_container(service, INPUT_CONTAINER)
    rng = random.Random(42)
    blob_writer = BlobWriter(service.get_blob_client(INPUT_CONTAINER, name), "application/json")
    local = copy.open("wb")

    class Tee:
        def write(self, data: bytes) -> None:
            blob_writer.write(data)
            local.write(data)

        @property
        def size(self) -> int:
            return blob_writer.size

    writer = Tee()
    writer.write(b'{"requests": [')
    count, parts, size = 0, [], 0
    while writer.size + size < target_bytes - 2:
        seeds = [_item(rng) for _ in range(1 if rng.random() < 0.6 else 2)]
        part = json.dumps({"SeedItems": seeds}).encode()
        parts.append((b", " if count else b"") + part)
        size += len(parts[-1])
        count += 1
        if len(parts) >= 10000:
            writer.write(b"".join(parts))
            parts, size = [], 0
    writer.write(b"".join(parts) + b"]}")
    blob_writer.close()
    local.close()
    return blob_writer.size, count


def synthesize_outputs(service, instance: str, chunks: list[dict]) -> int:
    """Write chunk outputs and error blobs shaped like the service's; return output bytes."""
    from recobatch import naming

    work = service.get_container_client("bench-work")
    total = 0
    for chunk in chunks:
        body = json.loads(work.get_blob_client(
            naming.chunk_input_blob(instance, chunk["name"])).download_blob().readall())
        results, errors = [], []
        for i, request in enumerate(body["requests"]):
            item = f"REC-{i % 9973:05d}"
            results.append({"request": {"seedItems": request["SeedItems"]}, "recommendations": [
                {"items": [{"itemId": item, "name": f"Item {item}", "metadata": ""}],
                 "rating": 0.5, "reasoning": [f"People who like the selected items also like "
                                              f"'Item {item}'"]}]})
            if i % 997 == 5:
                errors.append(f"request {i}: no recommendations for unknown items\n")
        data = json.dumps({"results": results}).encode()
        total += len(data)
        work.get_blob_client(naming.chunk_output_blob(instance, chunk["name"])).upload_blob(
            data, overwrite=True)
        work.get_blob_client(naming.chunk_error_blob(instance, chunk["name"])).upload_blob(
            "".join(errors).encode(), overwrite=True)
    return total


def child(phase: str, name: str, instance: str, chunks_file: str | None) -> None:
    """Run one phase in this process and print a JSON line with time and peak RSS."""
    if phase == "jsonload":
        baseline = peak_rss_mb()
        start, cpu_start = time.perf_counter(), time.process_time()
        with open(name, "rb") as file:
            count = len(json.load(file)["requests"])
        print(json.dumps({"seconds": time.perf_counter() - start,
                          "cpu_seconds": time.process_time() - cpu_start,
                          "peak_rss_mb": peak_rss_mb(), "baseline_rss_mb": baseline,
                          "result": {"requests": count}}))
        return
    if phase == "local":
        import io

        from recobatch.jobspec import JobSettings
        from recobatch.prepare import prepare

        baseline = peak_rss_mb()
        start, cpu_start = time.perf_counter(), time.process_time()
        summary = prepare(lambda: open(name, "rb"), False,  # noqa: SIM115 - prepare closes
                          JobSettings(api_name="ItemRecommend", model_id="bench-model"), None,
                          2_000_000, lambda chunk: None, io.BytesIO)
        print(json.dumps({"seconds": time.perf_counter() - start,
                          "cpu_seconds": time.process_time() - cpu_start,
                          "peak_rss_mb": peak_rss_mb(), "baseline_rss_mb": baseline,
                          "result": {"valid": summary.valid}}))
        return
    from activities.merge_results import run as merge_results
    from activities.prepare_batch import run as prepare_batch

    etag = None
    if phase == "merge":
        # merge_results commits only for the current input version: read it before timing.
        from recobatch import storage

        blob = storage.service_client().get_container_client(INPUT_CONTAINER).get_blob_client(
            name)
        etag = str(blob.get_blob_properties().etag).strip('"')
    baseline = peak_rss_mb()
    start = time.perf_counter()
    cpu_start = time.process_time()
    if phase == "prepare":
        result = prepare_batch({"instanceId": instance, "container": INPUT_CONTAINER,
                                "name": name})
    else:
        chunks = json.loads(Path(str(chunks_file)).read_text())
        result = merge_results({"instanceId": instance, "container": INPUT_CONTAINER,
                                "inputName": name, "etag": etag,
                                "chunks": [{"name": c["name"], "status": "Succeeded"}
                                           for c in chunks]})
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    peak = peak_rss_mb()
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak,
                      "baseline_rss_mb": baseline, "result": result}))


def peak_rss_mb() -> float:
    """This process's peak RSS in MB: VmHWM (per address space, so reset by exec), else
    ru_maxrss (which on Linux can carry the forking parent's size over exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(phase: str, connection: str, name: str, instance: str,
              chunks_file: Path | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", phase, "--name", name, "--instance", instance]
    if chunks_file is not None:
        cmd += ["--chunks-file", str(chunks_file)]
    out = subprocess.run(cmd, env=_env(connection), cwd=REPO, check=True, stdout=subprocess.PIPE,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="20,40,200",
                        help="input sizes in MB, comma-separated")
    parser.add_argument("--no-merge", action="store_true", help="json.load and prepare only")
    parser.add_argument("--child", choices=("jsonload", "local", "prepare", "merge"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    parser.add_argument("--instance", help=argparse.SUPPRESS)
    parser.add_argument("--chunks-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.name, args.instance, args.chunks_file)
        return

    from azure.storage.blob import BlobServiceClient

    from devhost.services import start_azurite

    workdir = Path(tempfile.mkdtemp(prefix="bench-prepare-merge-"))
    azurite = start_azurite(workdir)
    try:
        connection = str(azurite.extra["connection_string"])
        service = BlobServiceClient.from_connection_string(connection)
        print(f"{'input':>8} {'requests':>10} {'chunks':>6} | {'json.load s':>11} {'cpu s':>6} "
              f"{'MB/s':>5} {'peak RSS':>8} | {'prepare s':>9} {'cpu s':>6} {'MB/s':>5} "
              f"{'ratio':>5} {'cpu ratio':>9} "
              f"{'peak RSS':>8} | {'local s':>7} {'MB/s':>5} {'ratio':>5} "
              f"| {'merge s':>8} {'cpu s':>6} {'MB/s':>5} {'peak RSS':>8} "
              f"{'results':>8} | {'RSS after imports':>17}", flush=True)
        for size_mb in (int(s) for s in args.sizes.split(",")):
            name = f"requests-{size_mb}mb.json"
            instance = f"rb-bench-{size_mb}"
            copy = workdir / name
            size, count = generate(service, name, size_mb * MB, copy)
            load = run_child("jsonload", connection, str(copy), instance)
            local = run_child("local", connection, str(copy), instance)
            copy.unlink()
            prep = run_child("prepare", connection, name, instance)
            chunks = prep["result"]["chunks"]
            assert prep["result"]["valid"] == count, prep["result"]
            assert load["result"]["requests"] == count, load["result"]
            line = (f"{size / MB:>6.0f}MB {count:>10,} {len(chunks):>6} | "
                    f"{load['seconds']:>11.1f} {load['cpu_seconds']:>6.1f} "
                    f"{size / MB / load['seconds']:>5.1f} {load['peak_rss_mb']:>6.0f}MB | "
                    f"{prep['seconds']:>9.1f} {prep['cpu_seconds']:>6.1f} "
                    f"{size / MB / prep['seconds']:>5.1f} "
                    f"{load['seconds'] / prep['seconds']:>4.1f}x "
                    f"{load['cpu_seconds'] / prep['cpu_seconds']:>8.1f}x "
                    f"{prep['peak_rss_mb']:>6.0f}MB | {local['seconds']:>7.1f} "
                    f"{size / MB / local['seconds']:>5.1f} "
                    f"{load['seconds'] / local['seconds']:>4.1f}x ")
            if args.no_merge:
                line += f"{'-':>8} {'-':>6} {'-':>5} {'-':>8} {'-':>8} | "
                merge = {"baseline_rss_mb": 0.0}
            else:
                synthesize_outputs(service, instance, chunks)
                chunks_file = workdir / f"{instance}.chunks.json"
                chunks_file.write_text(json.dumps(chunks))
                merge = run_child("merge", connection, name, instance, chunks_file)
                results_mb = merge["result"]["results"]["size"] / MB
                assert merge["result"]["counts"]["results"] == count, merge["result"]
                line += (f"{merge['seconds']:>8.1f} {merge['cpu_seconds']:>6.1f} "
                         f"{results_mb / merge['seconds']:>5.1f} {merge['peak_rss_mb']:>6.0f}MB "
                         f"{results_mb:>6.0f}MB | ")
            print(line + f"{prep['baseline_rss_mb']:>5.0f}MB / {merge['baseline_rss_mb']:.0f}MB",
                  flush=True)
            for container in ("bench-work", "bench-output"):
                if not service.get_container_client(container).exists():
                    continue
                for blob in service.get_container_client(container).list_blobs():
                    service.get_container_client(container).delete_blob(blob.name)
            service.get_container_client(INPUT_CONTAINER).delete_blob(name)
        print("MB/s: input MB (json.load, prepare) or results MB written (merge) per "
              "wall-clock second; ratio: json.load seconds / prepare seconds, same run\n"
              "(cpu ratio: the same with CPU seconds); cpu s: the phase's own CPU time (prepare's "
              "excludes Azurite's). peak RSS: VmHWM of the subprocess running "
              "that phase, imports included.")
    finally:
        azurite.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
