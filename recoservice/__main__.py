"""Command line: ``python -m recoservice serve --host H --port P --state-dir D --key K ...``;
``python -m recoservice load ...`` loads your own catalog and usage (``recoservice.load``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from recoservice import load
from recoservice.config import DEFAULT_ALLOWED_BLOB_HOSTS, Config
from recoservice.database import url_has_password


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recoservice")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the service (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8001)
    serve.add_argument("--state-dir", type=Path, required=True,
                       help="folder for the database and built models (kept across restarts)")
    serve.add_argument("--key", action="append", default=[], dest="keys",
                       help="a valid subscription key (repeatable; visible in ps: prefer "
                            "--key-file or RECOSERVICE_KEYS outside tests)")
    serve.add_argument("--key-file", type=Path, default=None,
                       help="file with one valid subscription key per line")
    serve.add_argument("--demo", action="store_true",
                       help="ensure the 'demo' model exists, built, before serving")
    serve.add_argument("--faults", nargs="?", const="", default=None, metavar="RULES_FILE",
                       help="mount the fault-injection routes /admin/faults (tests only), "
                            "optionally loading JSON rules at start; needs an admin key")
    serve.add_argument("--admin-key-file", type=Path, default=None,
                       help="file with one admin key per line (for /admin/faults; also "
                            "env RECOSERVICE_ADMIN_KEYS, comma-separated; never on argv)")
    serve.add_argument("--allow-blob-host", action="append", dest="blob_hosts", default=None,
                       metavar="PATTERN",
                       help="host pattern batch jobs may use (repeatable; default: "
                            f"{', '.join(DEFAULT_ALLOWED_BLOB_HOSTS)})")
    serve.add_argument("--database", default=None, metavar="URL",
                       help="sqlite:///PATH (default: STATE_DIR/recoservice.db; one process) or "
                            "postgresql://USER@HOST/DB (several replicas); also env "
                            "RECOSERVICE_DATABASE. The password comes from PGPASSWORD, "
                            "PGPASSFILE or RECOSERVICE_DATABASE_PASSWORD_FILE, never from here; "
                            "RECOSERVICE_DATABASE_AUTH=entra signs in with an Entra token")
    serve.add_argument("--artifacts", default=None, metavar="CONTAINER_URL",
                       help="blob container for builds and usage files, signed in with the "
                            "managed identity (also env RECOSERVICE_ARTIFACTS); or put a "
                            "connection string in env RECOSERVICE_ARTIFACTS_CONNECTION. "
                            "Default: the state folder only")
    serve.add_argument("--artifacts-container", default="reco-artifacts",
                       help="container name with RECOSERVICE_ARTIFACTS_CONNECTION")
    serve.add_argument("--lease-seconds", type=float, default=30.0,
                       help="an operation whose replica stopped renewing its lease this long "
                            "ends Failed (default 30)")
    serve.add_argument("--max-catalog-mb", type=float, default=200.0)
    serve.add_argument("--max-usage-mb", type=float, default=500.0)
    serve.add_argument("--log-level", default="info")
    load.add_parser(commands)
    return parser


def _key_lines(path: Path | None, env: str) -> list[str]:
    keys = []
    if path is not None:
        keys += [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    keys += [k.strip() for k in os.environ.get(env, "").split(",") if k.strip()]
    return keys


def _admin_keys(args: argparse.Namespace, parser: argparse.ArgumentParser,
                keys: list[str]) -> list[str]:
    """Admin keys from --admin-key-file and RECOSERVICE_ADMIN_KEYS; required with --faults."""
    admin = _key_lines(args.admin_key_file, "RECOSERVICE_ADMIN_KEYS")
    if args.faults is not None and not admin:
        parser.error("--faults needs an admin key (--admin-key-file or RECOSERVICE_ADMIN_KEYS)")
    if set(admin) & set(keys):
        parser.error("an admin key must not also be a subscription key")
    return admin


def _keys(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    """Keys from --key, --key-file and RECOSERVICE_KEYS (comma-separated), in that order."""
    keys = list(args.keys) + _key_lines(args.key_file, "RECOSERVICE_KEYS")
    if not keys:
        parser.error("give at least one --key (or --key-file, or RECOSERVICE_KEYS)")
    return keys


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "load":
        sys.exit(load.run(args, parser))
    keys = _keys(args, parser)
    admin_keys = _admin_keys(args, parser, keys)
    if args.database and url_has_password(args.database):
        parser.error("--database must not hold a password (the command line is visible in "
                     "ps): use PGPASSWORD, PGPASSFILE or RECOSERVICE_DATABASE_PASSWORD_FILE")
    if not args.lease_seconds > 0:
        parser.error("--lease-seconds must be positive")
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # azure-core logs every storage request (URL, headers) at INFO: keep it to warnings.
    logging.getLogger("azure").setLevel(max(logging.WARNING, logging.root.level))
    config = Config(
        state_dir=args.state_dir, keys=keys,
        allowed_blob_hosts=list(args.blob_hosts or DEFAULT_ALLOWED_BLOB_HOSTS),
        admin_keys=admin_keys, faults=args.faults is not None,
        faults_file=Path(args.faults) if args.faults else None, demo=args.demo,
        max_catalog_bytes=int(args.max_catalog_mb * 1024 * 1024),
        max_usage_bytes=int(args.max_usage_mb * 1024 * 1024),
        database=args.database or os.environ.get("RECOSERVICE_DATABASE") or None,
        artifacts_url=args.artifacts or os.environ.get("RECOSERVICE_ARTIFACTS") or None,
        artifacts_connection=os.environ.get("RECOSERVICE_ARTIFACTS_CONNECTION") or None,
        artifacts_container=args.artifacts_container, lease_seconds=args.lease_seconds,
    )
    import uvicorn

    from recoservice.app import create_app

    app = create_app(config)
    # access_log off: request lines carry query strings, and uvicorn's own log is enough.
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                access_log=False)


if __name__ == "__main__":
    main()
