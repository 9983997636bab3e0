"""``python -m recobatch submit FILE [--wait]``: drop a requests file and follow its run;
``python -m recobatch rerun RUN_ID [--wait]``: re-run a failed run's unfinished chunks;
``python -m recobatch lookup A,B`` (or ``--user U``): a cached recommendation list.

The command uploads FILE to the input container (the blob trigger starts the run), then, with
``--wait``, shows chunk progress from the work container until the run's marker appears and
prints it (exit 0 ``_SUCCESS``, 1 ``_FAILED``, 2 timed out, 3 the file was uploaded again or
deleted meanwhile: that run is superseded and writes no marker). It talks to storage only,
so it works the same against Azurite (``make run``) and Azure. Settings come from the
``Values`` of a local.settings.json (``--settings``; by default ``local.settings.json`` if
present, else ``.run/local.settings.json`` written by ``make run``), overridden by environment
variables.

``rerun`` calls the app's HTTP API (``POST /api/batches/{id}/rerun``; ``--api``, by default
``RECOBATCH_API`` or ``http://127.0.0.1:7071/api``), with the function key from
``RECOBATCH_FUNCTION_KEY`` or ``.run/function.key`` (``make run``), never from the command
line (it would show in ``ps``). With ``--wait`` it follows the new run through the API and
prints its marker (exit 0 ``_SUCCESS``, 1 ``_FAILED`` or a refusal, 2 timed out).

``lookup`` asks the same API (``GET /api/recommendations``, same ``--api`` and key) and prints
the cached list as JSON (exit 0), or the answer's sentence (exit 1: not cached or refused).
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import sys
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

import requests

from recobatch import naming
from recobatch.errors import RecobatchError, SupersededError
from recobatch.settings import Settings, load_settings
from recobatch.storage import download_bytes, ensure_container, ensure_current, service_client

DEFAULT_SETTINGS = (Path("local.settings.json"), Path(".run/local.settings.json"))
DEFAULT_API = "http://127.0.0.1:7071/api"
KEY_FILE = Path(".run/function.key")
FINISHED = ("Completed", "Failed", "Terminated", "Canceled")


def read_settings(path: Path | None, environ: Mapping[str, str]) -> Settings:
    """Settings from a local.settings.json's ``Values``, overridden by ``environ``."""
    candidates = [path] if path else [p for p in DEFAULT_SETTINGS if p.exists()]
    values: dict[str, str] = {}
    if candidates:
        with candidates[0].open(encoding="utf-8") as handle:
            values = {k: str(v) for k, v in json.load(handle).get("Values", {}).items()}
    return load_settings({**values, **environ})


def _progress(work, instance: str) -> tuple[int, int]:
    """(chunks written by prepare, chunk outputs written by the service) of a run."""
    total = done = 0
    for blob in work.list_blobs(name_starts_with=naming.work_prefix(instance)):
        name = posixpath.basename(blob.name)
        if name.startswith("chunk-") and name.endswith(".out.json"):
            done += 1
        elif name.startswith("chunk-") and name.count(".") == 1 and name.endswith(".json"):
            total += 1
    return total, done


def submit(path: Path, settings: Settings, name: str | None = None, wait: bool = False,
           timeout: float = 3600.0, out=sys.stdout) -> int:
    """Upload ``path``; with ``wait``, follow the run to its marker. Returns an exit code."""
    blob_name = name or path.name
    service = service_client(settings)
    inputs = ensure_container(service, settings.input_container)
    with path.open("rb") as data:
        etag = str(inputs.get_blob_client(blob_name).upload_blob(data, overwrite=True)["etag"])
    instance = naming.instance_id(settings.input_container, blob_name, etag.strip('"'))
    out.write(f"uploaded {path} to {settings.input_container}/{blob_name} (run {instance})\n")
    if not wait:
        return 0
    outputs = service.get_container_client(settings.output_container)
    work = service.get_container_client(settings.work_container)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for marker_blob in (naming.success_marker_blob(blob_name),
                            naming.failed_marker_blob(blob_name)):
            body = download_bytes(outputs.get_blob_client(marker_blob))
            if body is None:
                continue
            marker = json.loads(body)
            if marker.get("instanceId") != instance:
                continue  # a marker of an earlier upload of the same name
            out.write(f"\n{settings.output_container}/{marker_blob}:\n")
            out.write(json.dumps(marker, indent=2) + "\n")
            return 0 if marker.get("kind") == "success" else 1
        try:
            ensure_current(inputs.get_blob_client(blob_name), etag)
        except SupersededError as exc:
            # A superseded run writes no marker: waiting on would only run into the timeout.
            out.write(f"\n{exc.message}\nthis run writes nothing; the newer upload's run owns "
                      f"{settings.output_container}/{naming.output_prefix(blob_name)}\n")
            return 3
        total, done = _progress(work, instance)
        out.write(f"\r  chunks {done}/{total or '?'}")
        out.flush()
        time.sleep(1.0)
    out.write(f"\nno marker after {timeout:.0f}s\n")
    return 2


def function_key(environ: Mapping[str, str]) -> str:
    """The function key: ``RECOBATCH_FUNCTION_KEY``, else ``.run/function.key``."""
    key = environ.get("RECOBATCH_FUNCTION_KEY", "").strip()
    if not key and KEY_FILE.is_file():
        key = KEY_FILE.read_text(encoding="utf-8").strip()
    if not key:
        raise RecobatchError("no function key: set RECOBATCH_FUNCTION_KEY (or run `make run`, "
                             "which writes .run/function.key).")
    return key


def _answer(resp: requests.Response, ok: int, what: str, out) -> dict | None:
    """The JSON body of an answer with status ``ok`` (``{}`` when not JSON); else ``None``,
    having written why ``what`` was refused."""
    body = resp.json() if resp.headers.get("Content-Type", "").startswith(
        "application/json") else {}
    if resp.status_code != ok:
        message = (body.get("error") or {}).get("message") or resp.reason
        out.write(f"{what} refused ({resp.status_code}): {message}\n")
        return None
    return body


def rerun(run_id: str, api: str, key: str, settings: Settings | None, wait: bool = False,
          timeout: float = 3600.0, out=sys.stdout) -> int:
    """Ask for the re-run of ``run_id``; with ``wait``, follow it and print its marker."""
    session = requests.Session()
    session.headers["x-functions-key"] = key
    url = f"{api.rstrip('/')}/batches/{urllib.parse.quote(run_id, safe='')}"
    body = _answer(session.post(f"{url}/rerun", timeout=30), 202, f"re-run of {run_id}", out)
    if body is None:
        return 1
    new_id = body["instanceId"]
    verb = "started" if body.get("started") else "exists already"
    out.write(f"re-run {new_id} of {run_id} {verb}\n")
    if not wait:
        return 0
    status_url = f"{api.rstrip('/')}/batches/{new_id}"
    deadline = time.monotonic() + timeout
    status: dict = {}
    while time.monotonic() < deadline:
        status = session.get(status_url, timeout=30).json()
        if status.get("runtimeStatus") in FINISHED:
            break
        chunks = (status.get("progress") or {}).get("chunks") or {}
        out.write(f"\r  chunks {chunks.get('succeeded', 0)}/{chunks.get('total') or '?'}")
        out.flush()
        time.sleep(1.0)
    else:
        out.write(f"\nno end after {timeout:.0f}s\n")
        return 2
    output = str((status.get("progress") or {}).get("output") or "")
    container, _, prefix = output.partition("/")
    if settings is not None and prefix:
        outputs = service_client(settings).get_container_client(container)
        for marker_name in (prefix + naming.SUCCESS_MARKER, prefix + naming.FAILED_MARKER):
            raw = download_bytes(outputs.get_blob_client(marker_name))
            marker = json.loads(raw) if raw is not None else {}
            if marker.get("instanceId") == new_id:
                out.write(f"\n{container}/{marker_name}:\n{json.dumps(marker, indent=2)}\n")
                return 0 if marker.get("kind") == "success" else 1
    out.write(f"\n{json.dumps(status.get('result'), indent=2)}\n")
    return 0 if (status.get("result") or {}).get("status") == "Succeeded" else 1


def lookup(items: str | None, user: str | None, api: str, key: str, model: str | None = None,
           build: str | None = None, out=sys.stdout) -> int:
    """Print the cached recommendations of ``items`` (comma-separated) and/or ``user``."""
    params = {name: value for name, value in
              (("items", items), ("user", user), ("model", model), ("build", build))
              if value is not None}
    resp = requests.get(f"{api.rstrip('/')}/recommendations", params=params,
                        headers={"x-functions-key": key}, timeout=30)
    body = _answer(resp, 200, "lookup", out)
    if body is None:
        return 1
    out.write(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recobatch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub_submit = sub.add_parser("submit", help="upload a requests file and follow its run")
    sub_submit.add_argument("file", type=Path)
    sub_submit.add_argument("--name", help="blob name in the input container (default: file name)")
    sub_submit.add_argument("--wait", action="store_true", help="wait for the marker")
    sub_submit.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait")
    sub_submit.add_argument("--settings", type=Path, help="local.settings.json to read")
    sub_rerun = sub.add_parser("rerun", help="re-run a failed run's unfinished chunks")
    sub_rerun.add_argument("run_id", help="the failed run's instance id (rb-...)")
    sub_rerun.add_argument("--api", default=os.environ.get("RECOBATCH_API", DEFAULT_API),
                           help="the app's API base URL (default: RECOBATCH_API or "
                                f"{DEFAULT_API})")
    sub_rerun.add_argument("--wait", action="store_true", help="wait for the new run's end")
    sub_rerun.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait")
    sub_rerun.add_argument("--settings", type=Path, help="local.settings.json to read")
    sub_lookup = sub.add_parser("lookup", help="print a cached recommendation list")
    sub_lookup.add_argument("items", nargs="?", help="seed item ids, comma-separated")
    sub_lookup.add_argument("--user", help="a user id (user-to-item)")
    sub_lookup.add_argument("--model", help="model id (default: the app's RECO_MODEL_ID)")
    sub_lookup.add_argument("--build", help="build id or 'active' (default: the app's)")
    sub_lookup.add_argument("--api", default=os.environ.get("RECOBATCH_API", DEFAULT_API),
                            help="the app's API base URL (default: RECOBATCH_API or "
                                 f"{DEFAULT_API})")
    args = parser.parse_args(argv)
    if args.command == "lookup" and not args.items and not args.user:
        parser.error("give item ids (A,B) or --user")
    if args.command == "submit" and not args.file.is_file():
        parser.error(f"no such file: {args.file}")
    try:
        if args.command == "lookup":
            return lookup(args.items, args.user, args.api, function_key(os.environ),
                          args.model, args.build)
        if args.command == "rerun":
            settings = read_settings(args.settings, os.environ) if args.wait else None
            return rerun(args.run_id, args.api, function_key(os.environ), settings, args.wait,
                         args.timeout)
        settings = read_settings(args.settings, os.environ)
        return submit(args.file, settings, args.name, args.wait, args.timeout)
    except requests.RequestException as exc:
        print(f"error: the API did not answer ({type(exc).__name__})", file=sys.stderr)
        return 2
    except RecobatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
