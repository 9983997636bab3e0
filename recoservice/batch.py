"""Batch jobs: ``POST /batchjobs`` and ``GET /batchjobs`` of Recommendations API v4.0.

A submitted job becomes an operation (``GET /operations/{id}`` tracks it) and runs on a small
pool of worker threads, so the service stays responsive:

    read input (10 %) → score every request in one vectorised call (50 %) → write output and
    error blobs (90 %) → Succeeded (100 %)

The runner checks for a cancel request between steps and then ends ``Cancelled``. One job per
subscription key may be NotStarted/Running/Cancelling at a time (else 409). Request-level
problems do not fail the job: the error blob gets ``request <i>: <problem>`` per problem
(``i`` is the 0-based index in the input's ``requests``) and the output keeps one result per
request, in order. SAS tokens live only in memory for the job's run: the ``batch_jobs`` table
and every listing show ``***``; a job interrupted by a restart is marked Failed
(``recover_interrupted_jobs``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from recoservice import API_PREFIX, blobio
from recoservice.auth import require_key
from recoservice.blobio import BlobIOError, BlobLocation
from recoservice.errors import ApiError
from recoservice.faults import FaultRule
from recoservice.operations import operation_url

log = logging.getLogger("recoservice.batch")

API_NAMES = ("ItemRecommend", "UserRecommend")
ACTIVE = ("NotStarted", "Running", "Cancelling")
TERMINAL = ("Succeeded", "Failed", "Cancelled")
JOB_STATUS = {
    "NotStarted": "Registered",
    "Running": "InProgress",
    "Cancelling": "Canceling",
    "Cancelled": "Canceled",
    "Succeeded": "Succeeded",
    "Failed": "Failed",
}
WORKERS = 4
STUCK_POLL_SECONDS = 0.1

router = APIRouter()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batch_jobs (
    id TEXT PRIMARY KEY,
    operation_id TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    requestinfo TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT
)
"""
# One submit at a time per process, so "is another job active?" and "insert" are atomic.
_submit_lock = threading.Lock()


@dataclass(frozen=True)
class JobSpec:
    """A validated batch job request (holds SAS tokens: keep it in memory only)."""

    input: BlobLocation
    output: BlobLocation
    error: BlobLocation
    api_name: str
    model_id: str
    build_id: int | None
    number_of_results: int
    include_metadata: bool
    minimal_score: float

    def requestinfo(self) -> dict[str, Any]:
        """The job as ``GET /batchjobs`` shows it (tokens replaced by ``***``)."""
        return {
            "input": self.input.redacted(),
            "output": self.output.redacted(),
            "error": self.error.redacted(),
            "job": {
                "apiName": self.api_name,
                "modelId": self.model_id,
                "buildId": self.build_id,
                "numberOfResults": self.number_of_results,
                "includeMetadata": self.include_metadata,
                "minimalScore": self.minimal_score,
            },
        }

    def scrub(self, text: str) -> str:
        for location in (self.input, self.output, self.error):
            text = location.scrub(text)
        return text


def parse_job(body: Any) -> JobSpec:
    """Validate a submit body; raise ``ValueError`` naming the wrong field."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    locations = {name: blobio.parse_location(body.get(name), name)
                 for name in ("input", "output", "error")}
    job = body.get("job")
    if not isinstance(job, dict):
        raise ValueError("job is missing or not an object")
    api_name = job.get("apiName")
    if api_name not in API_NAMES:
        raise ValueError(f"job.apiName must be one of {', '.join(API_NAMES)}")
    model_id = job.get("modelId")
    if not isinstance(model_id, str) or not model_id:
        raise ValueError("job.modelId is missing")
    build_id = job.get("buildId")
    if build_id is not None:
        try:
            build_id = int(build_id)
        except (TypeError, ValueError):
            raise ValueError("job.buildId must be an integer") from None
    k = job.get("numberOfResults", 10)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 100:
        raise ValueError("job.numberOfResults must be an integer from 1 to 100")
    include_metadata = job.get("includeMetadata", False)
    if not isinstance(include_metadata, bool):
        raise ValueError("job.includeMetadata must be true or false")
    minimal_score = job.get("minimalScore", 0.1)
    if not isinstance(minimal_score, int | float) or isinstance(minimal_score, bool):
        raise ValueError("job.minimalScore must be a number")
    return JobSpec(
        input=locations["input"], output=locations["output"], error=locations["error"],
        api_name=api_name, model_id=model_id, build_id=build_id, number_of_results=k,
        include_metadata=include_metadata, minimal_score=float(minimal_score),
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _key_hash(key: str) -> str:
    # The subscription key is a secret: the table keeps only its hash.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _ensure_table(state: Any) -> None:
    with state.db() as conn:
        conn.execute(_SCHEMA)


def _op_id(created: Any) -> str:
    return str(created["id"] if isinstance(created, dict) else created)


def _op_field(state: Any, op_id: str, field: str) -> Any:
    op = state.get_operation(op_id)
    if op is None:
        return None
    return op.get(field) if isinstance(op, dict) else getattr(op, field, None)


def recover_interrupted_jobs(state: Any) -> int:
    """Mark jobs left active by a previous process as Failed; return how many.

    Their SAS tokens died with that process, so they cannot be resumed.
    """
    _ensure_table(state)
    with state.db() as conn:
        rows = conn.execute(
            "SELECT id, operation_id FROM batch_jobs WHERE ended_at IS NULL"
        ).fetchall()
    failed = 0
    for job_id, op_id in rows:
        if _op_field(state, op_id, "status") in ACTIVE:
            state.update_operation(
                op_id, status="Failed",
                message="The service restarted while the batch job was running.",
            )
            failed += 1
        with state.db() as conn:
            conn.execute("UPDATE batch_jobs SET ended_at = ? WHERE id = ?", (_now(), job_id))
    if failed:
        log.warning("marked %d interrupted batch job(s) Failed", failed)
    return failed


def _prepare(app: Any) -> None:
    """Once per app: table, recovery of interrupted jobs, the worker pool."""
    with _submit_lock:
        if getattr(app.state, "batch_pool", None) is not None:
            return
        recover_interrupted_jobs(app.state.state)
        app.state.batch_pool = _WorkerPool(WORKERS)


class _WorkerPool:
    """A few daemon threads; daemon so a ``stuck`` job never blocks the process from exiting."""

    def __init__(self, size: int) -> None:
        self._queue: queue.Queue[Callable[[], None]] = queue.Queue()
        for i in range(size):
            threading.Thread(target=self._work, name=f"batch-{i}", daemon=True).start()

    def submit(self, task: Callable[[], None]) -> None:
        self._queue.put(task)

    def _work(self) -> None:
        while True:
            task = self._queue.get()
            try:
                task()
            except Exception:  # a job's failure must not kill the worker
                log.exception("batch worker task failed")


@router.post("/batchjobs", status_code=202)
async def submit_batch_job(request: Request, key: str = Depends(require_key)) -> JSONResponse:
    """Validate and queue a batch job; 202 with ``Operation-Location``."""
    await request.app.state.faults.apply("submit")
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "BadArgument", "Body must be JSON.") from None
    try:
        spec = parse_job(body)
    except ValueError as exc:
        raise ApiError(400, "BadArgument", str(exc)) from None
    patterns = list(request.app.state.config.allowed_blob_hosts)
    for name, location in (("input", spec.input), ("output", spec.output),
                           ("error", spec.error)):
        if not blobio.host_allowed(location.host, patterns):
            raise ApiError(400, "BadArgument",
                           f"{name}.baseLocation host '{location.host}' is not allowed.")
    _check_build(request.app, spec)
    _prepare(request.app)
    state = request.app.state.state
    batch_id = uuid.uuid4().hex
    with _submit_lock:
        if _active_job(state, _key_hash(key)) is not None:
            raise ApiError(409, "Conflict",
                           "Another batch job of this subscription is still running.")
        op_id = _op_id(state.create_operation("batchjob", key, _job_url(request, batch_id)))
        with state.db() as conn:
            conn.execute(
                "INSERT INTO batch_jobs (id, operation_id, key_hash, requestinfo, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (batch_id, op_id, _key_hash(key), json.dumps(spec.requestinfo()), _now()),
            )
    app = request.app
    app.state.batch_pool.submit(lambda: _run_job(app, batch_id, op_id, spec))
    return JSONResponse(
        {"batchId": batch_id}, status_code=202,
        headers={"Operation-Location": operation_url(request, op_id)},
    )


def _check_build(app: Any, spec: JobSpec) -> None:
    """Refuse a job whose model or build cannot score, before it is queued.

    A 409 here would read as "busy" to clients (they retry), so build states become 400.
    """
    try:
        app.state.scorer.resolve_build(spec.model_id, spec.build_id)
    except ApiError as exc:
        if exc.status == 409:
            raise ApiError(400, exc.code, exc.message) from None
        raise


def _job_url(request: Request, batch_id: str) -> str:
    return f"{str(request.base_url).rstrip('/')}{API_PREFIX}/batchjobs/{batch_id}"


def _active_job(state: Any, key_hash: str) -> str | None:
    with state.db() as conn:
        rows = conn.execute(
            "SELECT id, operation_id FROM batch_jobs WHERE key_hash = ? AND ended_at IS NULL",
            (key_hash,),
        ).fetchall()
    for job_id, op_id in rows:
        if _op_field(state, op_id, "status") in ACTIVE:
            return str(job_id)
    return None


def _job_json(state: Any, row: Any) -> dict[str, Any]:
    job_id, op_id, requestinfo, created_at, started_at, ended_at = row
    status = _op_field(state, op_id, "status") or "Failed"
    return {
        "id": job_id,
        "requestinfo": json.loads(requestinfo),
        "status": JOB_STATUS.get(status, "Failed"),
        "operationId": op_id,
        "createdAt": created_at,
        "startedAt": started_at,
        "endedAt": ended_at,
    }


_SELECT = ("SELECT id, operation_id, requestinfo, created_at, started_at, ended_at"
           " FROM batch_jobs")


@router.get("/batchjobs")
async def list_batch_jobs(request: Request, key: str = Depends(require_key)) -> dict[str, Any]:
    """The caller's batch jobs, oldest first (``sasBlobToken`` shown as ``***``)."""
    _prepare(request.app)
    state = request.app.state.state
    with state.db() as conn:
        rows = conn.execute(_SELECT + " WHERE key_hash = ? ORDER BY created_at",
                            (_key_hash(key),)).fetchall()
    return {"batchJobs": [_job_json(state, row) for row in rows]}


@router.get("/batchjobs/{batch_id}")
async def get_batch_job(batch_id: str, request: Request,
                        key: str = Depends(require_key)) -> dict[str, Any]:
    """One of the caller's batch jobs."""
    _prepare(request.app)
    state = request.app.state.state
    with state.db() as conn:
        row = conn.execute(_SELECT + " WHERE id = ? AND key_hash = ?",
                           (batch_id, _key_hash(key))).fetchone()
    if row is None:
        raise ApiError(404, "ResourceNotFound", f"Batch job '{batch_id}' does not exist.")
    return _job_json(state, row)


# --------------------------------------------------------------------------- the runner


class _Cancelled(Exception):
    pass


class _JobFailed(Exception):
    pass


def _run_job(app: Any, batch_id: str, op_id: str, spec: JobSpec) -> None:
    """Run one job to a terminal operation status; never raises."""
    state = app.state.state
    with state.db() as conn:
        conn.execute("UPDATE batch_jobs SET started_at = ? WHERE id = ?", (_now(), batch_id))
    try:
        rule = app.state.faults.take_job_rule()
        _check_cancel(state, op_id)
        state.update_operation(op_id, status="Running", percent_complete=0)
        result = _execute(app, op_id, spec, rule)
        state.update_operation(op_id, status="Succeeded", percent_complete=100,
                               message="Batch job completed.", result=result)
    except _Cancelled:
        state.update_operation(op_id, status="Cancelled", message="Batch job cancelled.")
    except (_JobFailed, BlobIOError) as exc:
        state.update_operation(op_id, status="Failed", message=spec.scrub(str(exc)))
    except ApiError as exc:  # the scorer refused (e.g. build deleted, no user-to-item)
        state.update_operation(op_id, status="Failed", message=spec.scrub(exc.message))
    except Exception as exc:  # the operation must still end; say what broke, never the token
        log.error("batch job %s crashed: %s", batch_id, spec.scrub(repr(exc)))
        state.update_operation(op_id, status="Failed",
                               message=spec.scrub(f"Internal error: {type(exc).__name__}"))
    finally:
        with state.db() as conn:
            conn.execute("UPDATE batch_jobs SET ended_at = ? WHERE id = ?", (_now(), batch_id))


def _check_cancel(state: Any, op_id: str) -> None:
    if state.is_cancel_requested(op_id):
        raise _Cancelled


def _execute(app: Any, op_id: str, spec: JobSpec, rule: FaultRule | None) -> dict[str, Any]:
    state = app.state.state
    if rule is not None and rule.action == "fail":
        raise _JobFailed(rule.message)
    if rule is not None and rule.action == "stuck":
        stop = threading.Event()
        while not state.is_cancel_requested(op_id):
            stop.wait(STUCK_POLL_SECONDS)
        raise _Cancelled

    data = blobio.read_input(spec.input)
    requests = _parse_input(data)
    state.update_operation(op_id, percent_complete=10)
    _check_cancel(state, op_id)

    results, errors = _score(app.state.scorer, spec, requests)
    state.update_operation(op_id, percent_complete=50)
    _check_cancel(state, op_id)

    if rule is not None and rule.action == "invalidOutput":
        output = b"this is not JSON {"
    else:
        output = json.dumps({"results": results}, ensure_ascii=False).encode("utf-8")
    if rule is None or rule.action != "skipOutput":
        blobio.write_blob(spec.output, output, "application/json")
    error_text = "".join(line + "\n" for line in errors)
    blobio.write_blob(spec.error, error_text.encode("utf-8"), "text/plain; charset=utf-8")
    state.update_operation(op_id, percent_complete=90)
    return {"requests": len(results), "errors": len(errors)}


def _parse_input(data: bytes) -> list[Any]:
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _JobFailed(f"Input blob is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("requests"), list):
        raise _JobFailed('Input blob is not the documented format {"requests": [...]}.')
    return list(doc["requests"])


def _score(scorer: Any, spec: JobSpec,
           requests: list[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Score all valid requests in one call; return results (in order) and error lines."""
    user_mode = spec.api_name == "UserRecommend"
    echoes: list[dict[str, Any]] = []
    errors: list[str] = []
    valid: list[int] = []
    inputs: list[Any] = []
    for i, req in enumerate(requests):
        echo, value, problem = (_user_request(req) if user_mode else _item_request(req))
        echoes.append(echo)
        if problem:
            errors.append(f"request {i}: {problem}")
        else:
            valid.append(i)
            inputs.append(value)
    scored: list[Any] = []
    if inputs:
        call = scorer.recommend_users if user_mode else scorer.recommend_items
        scored = call(spec.model_id, spec.build_id, inputs, spec.number_of_results,
                      include_metadata=spec.include_metadata,
                      minimal_score=spec.minimal_score)
    recs: list[list[dict[str, Any]]] = [[] for _ in requests]
    for i, item in zip(valid, scored, strict=True):
        recs[i] = [_recommendation(r) for r in item.recommendations]
        if item.error:
            errors.append(f"request {i}: {item.error}")
    errors.sort(key=lambda line: int(line.split(":", 1)[0].split()[1]))
    results = [{"request": echo, "recommendations": rec} for echo, rec in zip(echoes, recs,
                                                                             strict=True)]
    return results, errors


def _item_request(req: Any) -> tuple[dict[str, Any], Any, str | None]:
    if not isinstance(req, dict):
        return {"seedItems": []}, None, "not an object"
    if "SeedItems" not in req:
        return {"seedItems": []}, None, "SeedItems missing"
    seeds = req["SeedItems"]
    if not isinstance(seeds, list):
        return {"seedItems": []}, None, "SeedItems is not a list"
    if not seeds:
        return {"seedItems": []}, None, "SeedItems is empty"
    if not all(isinstance(s, str) and s for s in seeds):
        return {"seedItems": seeds}, None, "SeedItems must hold non-empty strings"
    return {"seedItems": list(seeds)}, list(seeds), None


def _user_request(req: Any) -> tuple[dict[str, Any], Any, str | None]:
    if not isinstance(req, dict):
        return {"userId": None}, None, "not an object"
    user = req.get("UserId", req.get("userId"))
    if user is None:
        return {"userId": None}, None, "UserId missing"
    if not isinstance(user, str | int) or isinstance(user, bool) or str(user) == "":
        return {"userId": user}, None, "UserId must be a non-empty string"
    return {"userId": user}, str(user), None


def _recommendation(rec: Any) -> dict[str, Any]:
    """One output recommendation: an item set with rating and reasoning."""
    if not isinstance(rec, dict):
        rec = dict(rec.__dict__)
    if "items" in rec:
        items = [{"itemId": it.get("itemId", it.get("id")), "name": it.get("name", ""),
                  "metadata": it.get("metadata", "") or ""} for it in rec["items"]]
    else:
        items = [{"itemId": rec.get("itemId", rec.get("id")), "name": rec.get("name", ""),
                  "metadata": rec.get("metadata", "") or ""}]
    return {"items": items, "rating": rec.get("rating"), "reasoning": list(rec.get("reasoning")
                                                                           or [])}
