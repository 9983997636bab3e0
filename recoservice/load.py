"""``python -m recoservice load``: your own catalog and usage into a v4 service, then a build.

::

    python -m recoservice load --endpoint URL --name NAME --catalog FILE --usage FILE \\
        [--usage FILE ...] [--build-type Sar|Recommendation|Fbt] [--wait] [--key KEY]

Against any Recommendations API v4.0-compatible endpoint (recoservice, or the same contract
elsewhere), over its public routes only: creates the model (``POST /models``), uploads the
catalog (``POST /models/{id}/catalog``, lines ``<ItemId>,<ItemName>,<Category>[,...]``) and
each usage file (``POST /models/{id}/usage``, lines ``<UserId>,<ItemId>,<Time>[,<Event>]``)
with a progress line for large files, prints each import's statistics, starts a build
(``POST /models/{id}/builds``) and, with ``--wait``, follows its operation to the end. It prints
the model id and build id to put in ``RECO_MODEL_ID`` and ``RECO_BUILD_ID``.

The key comes from ``--key`` or, so it need not appear on the command line (where ``ps`` shows
it), from the ``RECO_SUBSCRIPTION_KEY`` environment variable. A refusal by the service is
printed as its own sentence (``error.message``) with the status and code, and the command
exits 1; the key is never printed. Steps and progress go to stderr, the ids to stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urljoin, urlsplit

import requests

KEY_ENV = "RECO_SUBSCRIPTION_KEY"
BUILD_TYPES = {"sar": "Sar", "recommendation": "Recommendation", "fbt": "Fbt"}
TERMINAL = ("Succeeded", "Failed", "Cancelled")
POLL_SECONDS = 2.0
CALL_TIMEOUT = (10, 60)        # connect, read (seconds)
UPLOAD_TIMEOUT = (10, 900)     # the service parses the whole file before it answers
PROGRESS_MIN_BYTES = 4 * 1024 * 1024
MAX_MESSAGE = 500


class LoadError(Exception):
    """A step failed; the message is what the user sees (no key, no stack trace)."""


def _build_type(text: str) -> str:
    try:
        return BUILD_TYPES[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"must be one of {', '.join(BUILD_TYPES.values())}") from None


def add_parser(commands: Any) -> None:
    """Add the ``load`` subcommand to ``python -m recoservice``'s subparsers."""
    load = commands.add_parser(
        "load", help="create a model from your catalog and usage files and build it",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    load.add_argument("--endpoint", required=True,
                      help="base URL, e.g. http://127.0.0.1:8001/recommendations/v4.0")
    load.add_argument("--key", default=None,
                      help=f"subscription key (default: the {KEY_ENV} environment variable, "
                           "which keeps it out of ps)")
    load.add_argument("--name", required=True, help="model name")
    load.add_argument("--description", default="", help="model description")
    load.add_argument("--catalog", type=Path, required=True,
                      help="catalog CSV: <ItemId>,<ItemName>,<Category>[,<Description>...]")
    load.add_argument("--usage", type=Path, action="append", required=True,
                      help="usage CSV: <UserId>,<ItemId>,<Time ISO-8601>[,<EventType>] "
                           "(repeatable)")
    load.add_argument("--build-type", type=_build_type, default="Sar",
                      help="Sar (default), Recommendation or Fbt (case-insensitive)")
    load.add_argument("--wait", action="store_true",
                      help="follow the build until it ends (default: start it and return)")


def _say(text: str, end: str = "\n") -> None:
    sys.stderr.write(text + end)
    sys.stderr.flush()


class _ProgressFile:
    """A file for ``requests`` to stream (its length gives Content-Length), drawing a progress
    line on stderr while it is read when the file is large."""

    def __init__(self, f: BinaryIO, size: int, label: str) -> None:
        self._f, self._size, self._label = f, size, label
        self._sent, self._shown = 0, -1
        self._draw = size >= PROGRESS_MIN_BYTES

    def __len__(self) -> int:
        return self._size

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._sent += len(data)
        percent = self._sent * 100 // self._size if self._size else 100
        if self._draw and percent != self._shown:
            self._shown = percent
            _say(f"\r  uploading {self._label}: {self._sent / 1e6:.1f} of "
                 f"{self._size / 1e6:.1f} MB ({percent} %)", end="")
            if self._sent >= self._size:
                _say("")
        return data


class _Client:
    """The few v4 calls ``load`` makes, with the service's error sentences as ``LoadError``."""

    def __init__(self, endpoint: str, key: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Ocp-Apim-Subscription-Key"] = key

    def call(self, what: str, method: str, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", CALL_TIMEOUT)
        try:
            resp = self.session.request(method, url, **kwargs)
        except requests.RequestException as exc:
            # The exception text names the URL only; no header (the key) is in it.
            raise LoadError(f"{what}: cannot reach {self.endpoint} "
                            f"({type(exc).__name__})") from exc
        if resp.status_code >= 400:
            raise LoadError(f"{what}: {_sentence(resp)}")
        return resp

    def operation_url(self, location: str | None) -> str | None:
        """The build's operation URL, only on the endpoint's own host (the key goes there)."""
        if not location:
            return None
        url = urljoin(self.endpoint + "/", location)
        mine, theirs = urlsplit(self.endpoint), urlsplit(url)
        if (theirs.scheme, theirs.netloc) != (mine.scheme, mine.netloc):
            operation_id = theirs.path.rstrip("/").rsplit("/", 1)[-1]
            return f"{self.endpoint}/operations/{quote(operation_id)}"
        return url


def _sentence(resp: requests.Response) -> str:
    """The service's own words for a refusal: ``error.message`` with status and code."""
    code, message = "", ""
    try:
        body = resp.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            code, message = str(error.get("code") or ""), str(error.get("message") or "")
    except ValueError:
        message = resp.text.strip()
    message = " ".join(message.split())[:MAX_MESSAGE] or resp.reason or "no message"
    return f"{message} (HTTP {resp.status_code}{' ' + code if code else ''})"


def _stats(label: str, body: dict[str, Any]) -> str:
    errors = ", ".join(f"{e.get('errorCode')} {e.get('errorCodeCount')}"
                       for e in body.get("errorSummary") or [])
    return (f"{label}: {body.get('processedLineCount', '?')} lines, "
            f"{body.get('importedLineCount', '?')} imported, "
            f"{body.get('errorLineCount', '?')} bad" + (f" ({errors})" if errors else ""))


def _upload(client: _Client, what: str, url: str, path: Path,
            params: dict[str, str]) -> dict[str, Any]:
    size = path.stat().st_size
    with path.open("rb") as f:
        resp = client.call(f"{what} {path.name}", "POST", url, params=params,
                           data=_ProgressFile(f, size, path.name),
                           headers={"Content-Type": "application/octet-stream"},
                           timeout=UPLOAD_TIMEOUT)
    return resp.json()


def _wait(client: _Client, op_url: str, build_id: int) -> dict[str, Any]:
    """Poll the build's operation until it ends; one progress line on stderr."""
    while True:
        op = client.call("build status", "GET", op_url).json()
        status = str(op.get("status"))
        _say(f"\r  build {build_id}: {status} {op.get('percentComplete', 0)} %    ", end="")
        if status in TERMINAL:
            _say("")
            return op
        time.sleep(POLL_SECONDS)


def load(args: argparse.Namespace, key: str) -> int:
    """Run the steps; raise ``LoadError`` on the first failure."""
    for path in (args.catalog, *args.usage):
        if not path.is_file():
            raise LoadError(f"{path}: no such file")
    client = _Client(args.endpoint, key)
    base = client.endpoint
    model = client.call("create model", "POST", f"{base}/models",
                        json={"modelName": args.name,
                              "description": args.description}).json()
    model_id = str(model["id"])
    _say(f"model {args.name}: {model_id}")
    try:
        stats = _upload(client, "catalog", f"{base}/models/{model_id}/catalog", args.catalog,
                        {"catalogDisplayName": args.catalog.name})
        _say(_stats(f"catalog {args.catalog.name}", stats))
        if not stats.get("importedLineCount"):
            raise LoadError(f"catalog {args.catalog.name}: no line was imported")
        for path in args.usage:
            stats = _upload(client, "usage", f"{base}/models/{model_id}/usage", path,
                            {"usageDisplayName": path.name})
            _say(_stats(f"usage {path.name}", stats))
        resp = client.call("start build", "POST", f"{base}/models/{model_id}/builds",
                           json={"description": f"{args.build_type} build by "
                                                "recoservice load",
                                 "buildType": args.build_type})
    except LoadError as exc:
        raise LoadError(f"{exc}\nmodel {model_id} was created; delete it or use it "
                        "after fixing the problem") from exc
    build_id = int(resp.json()["buildId"])
    op_url = client.operation_url(resp.headers.get("Operation-Location"))
    _say(f"build {build_id} ({args.build_type}) started")
    if args.wait and op_url:
        try:
            op = _wait(client, op_url, build_id)
        except KeyboardInterrupt:
            _say(f"\nstopped waiting; the build goes on: {op_url}")
            op = {"status": "Running"}
        if op.get("status") != "Succeeded":
            message = " ".join(str(op.get("message") or "").split())[:MAX_MESSAGE]
            if op.get("status") in TERMINAL:
                raise LoadError(f"build {build_id} {op.get('status')}: "
                                f"{message or 'no message'} (model {model_id})")
    elif op_url:
        _say(f"follow it: GET {op_url} (it becomes the active build when it succeeds)")
    else:
        _say("the service gave no Operation-Location to follow the build with")
    print(f"RECO_MODEL_ID={model_id}")
    print(f"RECO_BUILD_ID={build_id}")
    return 0


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``python -m recoservice load``: the exit status (0 done, 1 a step failed)."""
    key = args.key or os.environ.get(KEY_ENV, "")
    if not key:
        parser.error(f"give --key or set {KEY_ENV}")
    if urlsplit(args.endpoint).scheme not in ("http", "https"):
        parser.error("--endpoint must be an http:// or https:// URL")
    try:
        return load(args, key)
    except LoadError as exc:
        _say(f"error: {exc}")
        return 1
