"""Seed a v4-compatible endpoint with a catalog and usage, build a model, print its id.

After ``azd up`` (recoservice starts empty)::

    MODEL=$(.venv/bin/python scripts/seed_recoservice.py --synthetic)
    azd env set RECO_MODEL_ID "$MODEL" && azd provision

or with your own files (formats in recoservice/README.md)::

    .venv/bin/python scripts/seed_recoservice.py --catalog catalog.csv --usage usage.csv

The endpoint and key come from ``RECO_ENDPOINT`` and ``RECO_SUBSCRIPTION_KEY`` in the
environment, else from the azd environment (``azd env get-value``). The key never appears on a
command line or in the output. Progress goes to stderr; stdout gets the model id alone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

TERMINAL = ("Succeeded", "Failed", "Cancelled")
TIMEOUT = 60  # seconds for each HTTP call; uploads get longer (below)


def azd_value(name: str) -> str:
    """``NAME`` from the environment, else from the current azd environment ("" if neither)."""
    value = os.environ.get(name, "")
    if value or shutil.which("azd") is None:
        return value
    result = subprocess.run(["azd", "env", "get-value", name], capture_output=True, text=True,
                            timeout=60)
    return result.stdout.strip() if result.returncode == 0 else ""


def log(message: str) -> None:
    print(f"seed: {message}", file=sys.stderr, flush=True)


class Upstream:
    """The v4 routes this script calls, on one session that carries the key."""

    def __init__(self, endpoint: str, key: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Ocp-Apim-Subscription-Key"] = key

    def call(self, method: str, path: str, timeout: float = TIMEOUT,
             **kwargs: Any) -> requests.Response:
        resp = self.session.request(method, f"{self.endpoint}{path}", timeout=timeout, **kwargs)
        if resp.status_code >= 400:
            # The service's error body names the problem; it never echoes the key.
            raise SystemExit(f"seed: {method} {path} answered {resp.status_code}: "
                             f"{resp.text[:500]}")
        return resp

    def create_model(self, name: str, description: str) -> str:
        body = {"modelName": name, "description": description}
        return str(self.call("POST", "/models", json=body).json()["id"])

    def upload(self, model_id: str, kind: str, path: Path) -> dict[str, Any]:
        with path.open("rb") as data:
            resp = self.call("POST", f"/models/{model_id}/{kind}", timeout=600,
                             params={f"{kind}DisplayName": path.stem}, data=data,
                             headers={"Content-Type": "text/csv"})
        return dict(resp.json())

    def build(self, model_id: str, build_type: str, deadline: float, poll: float) -> str:
        body = {"description": "seeded by scripts/seed_recoservice.py", "buildType": build_type}
        resp = self.call("POST", f"/models/{model_id}/builds", json=body)
        build_id = resp.json()["buildId"]
        # Only the operation id is taken from Operation-Location: the URL's scheme and host are
        # what the service saw, which behind a proxy may not be the public https address.
        operation_id = resp.headers["Operation-Location"].rstrip("/").rsplit("/", 1)[-1]
        while True:
            status = self.call("GET", f"/operations/{operation_id}").json()
            if status.get("status") in TERMINAL:
                if status["status"] != "Succeeded":
                    raise SystemExit(f"seed: build {build_id} ended {status['status']}: "
                                     f"{status.get('statusMessage') or ''}")
                return str(build_id)
            if time.monotonic() > deadline:
                raise SystemExit(f"seed: build {build_id} still {status.get('status')} "
                                 "at the deadline (--timeout)")
            log(f"build {build_id}: {status.get('status')} {status.get('percentComplete', '')}")
            time.sleep(poll)


def synthetic_files(out: Path, items: int, users: int, seed: int) -> tuple[Path, Path]:
    subprocess.run([sys.executable, "-m", "recoservice.synth", "--items", str(items),
                    "--users", str(users), "--seed", str(seed), "--out", str(out)],
                   check=True, cwd=Path(__file__).resolve().parent.parent, timeout=600,
                   stdout=sys.stderr)  # stdout carries the model id alone
    return out / "catalog.csv", out / "usage.csv"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", action="store_true",
                        help="generate data with recoservice.synth (--items/--users/--seed)")
    source.add_argument("--catalog", type=Path, help="catalog CSV (needs --usage)")
    p.add_argument("--usage", type=Path, help="usage CSV")
    p.add_argument("--items", type=int, default=2000)
    p.add_argument("--users", type=int, default=3000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--endpoint", help="default: RECO_ENDPOINT (environment or azd)")
    p.add_argument("--model-name", default="recobatch")
    p.add_argument("--build-type", default="recommendation")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for the build")
    p.add_argument("--poll", type=float, default=5.0, help="seconds between status checks")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.catalog is not None and args.usage is None:
        parser().error("--catalog needs --usage")
    endpoint = args.endpoint or azd_value("RECO_ENDPOINT")
    key = azd_value("RECO_SUBSCRIPTION_KEY")
    if not endpoint or not key:
        parser().error("RECO_ENDPOINT and RECO_SUBSCRIPTION_KEY must be set "
                       "(in the environment or the azd environment)")
    upstream = Upstream(endpoint, key)
    deadline = time.monotonic() + args.timeout
    with tempfile.TemporaryDirectory() as tmp:
        if args.synthetic:
            log(f"generating {args.items} items, {args.users} users (seed {args.seed})")
            catalog, usage = synthetic_files(Path(tmp), args.items, args.users, args.seed)
        else:
            catalog, usage = args.catalog, args.usage
        model_id = upstream.create_model(args.model_name, f"catalog {catalog.name}")
        log(f"model {model_id} created at {upstream.endpoint}")
        for kind, path in (("catalog", catalog), ("usage", usage)):
            stats = upstream.upload(model_id, kind, path)
            log(f"{kind} {path.name}: {stats.get('importedLineCount')} of "
                f"{stats.get('processedLineCount')} lines imported")
    build_id = upstream.build(model_id, args.build_type, deadline, args.poll)
    log(f"build {build_id} succeeded and is the model's active build")
    print(model_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
