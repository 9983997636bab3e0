"""``python -m devhost --app-dir DIR --port 7071``: serve a v2 function app locally.

Settings come from ``Values`` of ``local.settings.json`` (like ``func start``), overridden by
environment variables, and are in ``os.environ`` before the app is imported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import secrets
import signal
import sys
from pathlib import Path

from aiohttp import web

from devhost.blobtrigger import BlobTrigger
from devhost.durable import fastparse
from devhost.durable.activities import Activity, ActivityPool
from devhost.durable.client_api import TASK_HUB, ClientApi
from devhost.durable.clock import Clock
from devhost.durable.orchestrations import Engine
from devhost.durable.store import Store
from devhost.http import build_app
from devhost.indexer import IndexError_, describe_line, load_app

log = logging.getLogger("devhost")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    parser.add_argument("--app-dir", type=Path, required=True, help="folder of function_app.py")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--settings", type=Path, help="default: APP_DIR/local.settings.json")
    parser.add_argument("--timer-scale", type=float, default=1.0,
                        help="run the orchestration clock (timers) this many times faster")
    parser.add_argument("--state-dir", type=Path, help="default: APP_DIR/.devhost")
    parser.add_argument("--master-key", help="default: $DEVHOST_MASTER_KEY or a generated key")
    parser.add_argument("--activity-workers", type=int, default=8)
    parser.add_argument("--poll-interval", type=float, default=1.0,
                        help="seconds between blob trigger polls")
    parser.add_argument("--exact-sdk", action="store_true",
                        help="keep the SDK's dateutil timestamp parsing (slower replays)")
    return parser.parse_args(argv)


def load_settings(path: Path) -> None:
    """Put ``Values`` into ``os.environ``; variables already set win, as with ``func start``."""
    if not path.exists():
        return
    values = json.loads(path.read_text()).get("Values", {})
    for key, value in values.items():
        os.environ.setdefault(key, str(value))


def _host_json(app_dir: Path) -> dict:
    host_json = app_dir / "host.json"
    return json.loads(host_json.read_text()) if host_json.exists() else {}


def route_prefix(app_dir: Path) -> str:
    http = _host_json(app_dir).get("extensions", {}).get("http", {})
    return str(http.get("routePrefix", "api"))


# Durable docs ("Task hubs", host.json reference): a task hub name starts with a letter and
# has only letters and digits; the Azure Storage provider caps it at 45 characters.
HUB_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,44}")


def task_hub(app_dir: Path) -> str:
    """``extensions.durableTask.hubName`` of host.json, ``%SETTING%`` resolved as the Durable
    extension does (``INameResolver.TryResolveWholeString``: only a whole ``%NAME%`` value).

    Raises ``KeyError`` naming a missing setting or an invalid name: the host's extension fails
    its start too (an unresolved ``%NAME%`` is not a valid hub name).
    """
    name = _host_json(app_dir).get("extensions", {}).get("durableTask", {}).get("hubName")
    if not name:
        return TASK_HUB
    name = str(name)
    whole = re.fullmatch(r"%([^%]+)%", name)
    if whole:
        setting = whole.group(1)
        if not os.environ.get(setting):
            raise KeyError(f"app setting '{setting}' (host.json extensions.durableTask.hubName) "
                           "is not set")
        name = os.environ[setting]
    if not HUB_NAME.fullmatch(name):
        raise KeyError(f"task hub name {name!r} (host.json extensions.durableTask.hubName) must "
                       "be 3-45 letters and digits, starting with a letter")
    return name


async def serve(args: argparse.Namespace) -> int:
    app_dir = args.app_dir.resolve()
    load_settings(args.settings or app_dir / "local.settings.json")
    master_key = args.master_key or os.environ.get("DEVHOST_MASTER_KEY")
    if not master_key:
        master_key = secrets.token_urlsafe(24)
        print(f"Master key (generated): {master_key}", flush=True)
    try:
        functions = load_app(app_dir)
    except IndexError_ as exc:
        print(f"devhost: cannot start: {exc}", file=sys.stderr, flush=True)
        return 2
    if not args.exact_sdk:
        fastparse.install()
    base_url = f"http://127.0.0.1:{args.port}"
    prefix = route_prefix(app_dir)
    print("Functions:", flush=True)
    for info in functions:
        print(f"    {describe_line(info, base_url, prefix)}", flush=True)

    store = Store((args.state_dir or app_dir / ".devhost").resolve() / "devhost.db")
    clock = Clock(store, args.timer_scale)
    pool = ActivityPool(store, {f.name: Activity(f.func, f.arg_name) for f in functions
                                if f.trigger_type == "activityTrigger"}, clock,
                        workers=args.activity_workers)
    engine = Engine(store, {f.name: f.func for f in functions
                            if f.trigger_type == "orchestrationTrigger"}, pool, clock)
    try:
        client_api = ClientApi(engine, base_url, master_key, task_hub(app_dir))
        triggers = [BlobTrigger(f, store, client_api.binding_json(), args.poll_interval)
                    for f in functions
                    if f.trigger_type == "blobTrigger"]
    except KeyError as exc:
        print(f"devhost: cannot start: {exc.args[0]}", file=sys.stderr, flush=True)
        return 2

    runner = web.AppRunner(build_app(functions, client_api, master_key, prefix), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    engine.start()
    tasks = [asyncio.create_task(t.run()) for t in triggers]
    print(f"devhost: listening on {base_url} (timer scale {args.timer_scale})", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for task in tasks:
        task.cancel()
    engine.stop()
    pool.shutdown()
    await runner.cleanup()
    return 0


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # the storage SDK logs request URLs and headers at INFO: keep it (and any SAS) out
    logging.getLogger("azure").setLevel(logging.WARNING)
    code = asyncio.run(serve(parse_args(argv)))
    sys.stdout.flush()
    sys.stderr.flush()
    # don't wait for activities still running: their work items stay in the store and run
    # again at the next start (at-least-once, as on the real host)
    os._exit(code)


if __name__ == "__main__":
    main()
