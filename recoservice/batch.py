"""Batch jobs: ``POST /batchjobs``, ``GET /batchjobs`` (and ``/batchjobs/{id}``) of API v4.0.

Submit validates the body (400 naming the field), refuses blob hosts outside
``config.allowed_blob_hosts`` before any request is made to them, checks the model and build
can score, and answers 202 with an absolute ``Operation-Location`` and ``{"batchId"}``. One job
per subscription key may be NotStarted/Running/Cancelling at a time: a second one gets 409,
across replicas too (the check and the insert are one write transaction, and write
transactions are serialised by the database, see ``recoservice.database``).
The job then runs on a small worker pool (``recoservice.batch_runner``), so the service stays
responsive.

The ``batch_jobs`` table keeps each job's request info with every ``sasBlobToken`` replaced
by ``***``, the hash of the owner's key (never the key), and createdAt/startedAt/endedAt.
SAS tokens live only in memory while the job runs, so a job whose process dies cannot
resume: ``State`` marks its operation Failed (at start with SQLite; when its lease runs out
with PostgreSQL) and ``recover_interrupted_jobs`` closes its row. The listing maps operation
statuses to the v4 job statuses (``JOB_STATUS``).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from recoservice import API_PREFIX, blobio
from recoservice.auth import require_key
from recoservice.batch_runner import WorkerPool, run_job
from recoservice.blobio import BlobLocation
from recoservice.errors import ApiError
from recoservice.operations import operation_url
from recoservice.state import ACTIVE_STATUSES, RESTART_MESSAGE, State, key_hash

log = logging.getLogger("recoservice.batch")

API_NAMES = ("ItemRecommend", "UserRecommend")
JOB_STATUS = {
    "NotStarted": "Registered",
    "Running": "InProgress",
    "Cancelling": "Canceling",
    "Cancelled": "Canceled",
    "Succeeded": "Succeeded",
    "Failed": "Failed",
}
# Jobs of different keys run side by side; scoring is vectorised, so a few threads suffice.
WORKERS = 4

router = APIRouter()

# Guards the one-time set-up of an app's worker pool (``_prepare``).
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
        # int() would turn true into 1 and 1.5 into 1: a build the caller did not name.
        if isinstance(build_id, bool) or (isinstance(build_id, float)
                                          and not build_id.is_integer()):
            raise ValueError("job.buildId must be an integer")
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
    # v4 documented a 0.1 default honoured for FBT builds only; our builds are SAR, so an
    # absent minimalScore filters nothing (as the single-call recommend routes do).
    minimal_score = job.get("minimalScore", 0.0)
    if not isinstance(minimal_score, int | float) or isinstance(minimal_score, bool):
        raise ValueError("job.minimalScore must be a number")
    return JobSpec(
        input=locations["input"], output=locations["output"], error=locations["error"],
        api_name=api_name, model_id=model_id, build_id=build_id, number_of_results=k,
        include_metadata=include_metadata, minimal_score=float(minimal_score),
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _status(state: State, op_id: str) -> str | None:
    operation = state.get_operation(op_id)
    return None if operation is None else str(operation["status"])


def recover_interrupted_jobs(state: State) -> int:
    """Close the rows of jobs a previous process left open; return how many were active.

    ``State`` already marked their operations Failed at start; this also covers an operation
    still active (say the table was copied), since its SAS tokens are gone for good. With a
    shared database (other replicas may be running them) only rows whose operation has ended
    are closed; the active ones end when their lease does (``State.expire_leases``).
    """
    with state.db() as conn:
        rows = conn.execute("SELECT id, operation_id FROM batch_jobs WHERE ended_at IS NULL"
                            ).fetchall()
    active = closed = 0
    for job_id, op_id in rows:
        if _status(state, op_id) in ACTIVE_STATUSES:
            if state.database.shared:
                continue
            state.update_operation(op_id, status="Failed", message=RESTART_MESSAGE)
            active += 1
        _stamp(state, job_id, "ended_at")
        closed += 1
    if closed:
        log.warning("closed %d batch job(s) interrupted by a restart", closed)
    return active


def _stamp(state: State, job_id: str, column: str) -> None:
    assert column in ("started_at", "ended_at")
    with state.db() as conn:
        conn.execute(f"UPDATE batch_jobs SET {column} = ? WHERE id = ?", (_now(), job_id))


def _prepare(app: Any) -> None:
    """Once per app, before its first job: the table, restart recovery, the worker pool."""
    with _submit_lock:
        if getattr(app.state, "batch_pool", None) is None:
            recover_interrupted_jobs(app.state.state)
            app.state.batch_pool = WorkerPool(WORKERS)


def _run(app: Any, job_id: str, op_id: str, spec: JobSpec) -> None:
    """The worker's task: take a ``job`` fault rule, run, keep started/ended times."""
    state: State = app.state.state
    _stamp(state, job_id, "started_at")
    try:
        run_job(state, app.state.scorer, app.state.faults.take_job_rule(), op_id, spec)
    finally:
        _stamp(state, job_id, "ended_at")


@router.post("/batchjobs", status_code=202)
async def submit_batch_job(request: Request, key: str = Depends(require_key)) -> JSONResponse:
    """Validate and queue a batch job; 202 with ``Operation-Location`` and ``batchId``."""
    app = request.app
    await app.state.faults.apply("submit")
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "BadArgument", "Body must be JSON.") from None
    try:
        spec = parse_job(body)
    except ValueError as exc:
        raise ApiError(400, "BadArgument", str(exc)) from None
    patterns = list(app.state.config.allowed_blob_hosts)
    for name, location in (("input", spec.input), ("output", spec.output),
                           ("error", spec.error)):
        if not blobio.host_allowed(location.host, patterns):
            raise ApiError(400, "BadArgument",
                           f"{name}.baseLocation host '{location.host}' is not allowed.")
    _check_build(app, spec)
    _prepare(app)
    state: State = app.state.state
    job_id = uuid.uuid4().hex
    # One write transaction: no other submit, here or on another replica, runs in between.
    with state.db() as conn:
        if _active_job(state, key_hash(key)) is not None:
            raise ApiError(409, "Conflict",
                           "Another batch job of this subscription is still running.")
        op_id = state.create_operation("batchjob", key, _job_url(request, job_id))
        conn.execute(
            "INSERT INTO batch_jobs (id, operation_id, key_hash, requestinfo, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (job_id, op_id, key_hash(key), json.dumps(spec.requestinfo()), _now()),
        )
    app.state.batch_pool.submit(lambda: _run(app, job_id, op_id, spec))
    return JSONResponse({"batchId": job_id}, status_code=202,
                        headers={"Operation-Location": operation_url(request, op_id)})


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


def _job_url(request: Request, job_id: str) -> str:
    return f"{str(request.base_url).rstrip('/')}{API_PREFIX}/batchjobs/{job_id}"


def _active_job(state: State, key_hash: str) -> str | None:
    with state.db() as conn:
        rows = conn.execute(
            "SELECT id, operation_id FROM batch_jobs WHERE key_hash = ? AND ended_at IS NULL",
            (key_hash,),
        ).fetchall()
    for job_id, op_id in rows:
        if _status(state, op_id) in ACTIVE_STATUSES:
            return str(job_id)
    return None


_SELECT = ("SELECT id, operation_id, requestinfo, created_at, started_at, ended_at"
           " FROM batch_jobs")


def _job_json(state: State, row: Any) -> dict[str, Any]:
    job_id, op_id, requestinfo, created_at, started_at, ended_at = row
    return {
        "id": job_id,
        "requestinfo": json.loads(requestinfo),
        "status": JOB_STATUS.get(_status(state, op_id) or "Failed", "Failed"),
        "operationId": op_id,
        "createdAt": created_at,
        "startedAt": started_at,
        "endedAt": ended_at,
    }


@router.get("/batchjobs")
def list_batch_jobs(request: Request, key: str = Depends(require_key)) -> dict[str, Any]:
    """The caller's batch jobs, oldest first (``sasBlobToken`` shown as ``***``)."""
    _prepare(request.app)
    state: State = request.app.state.state
    with state.db() as conn:
        rows = conn.execute(_SELECT + " WHERE key_hash = ? ORDER BY created_at",
                            (key_hash(key),)).fetchall()
    return {"batchJobs": [_job_json(state, row) for row in rows]}


@router.get("/batchjobs/{batch_id}")
def get_batch_job(batch_id: str, request: Request,
                  key: str = Depends(require_key)) -> dict[str, Any]:
    """One of the caller's batch jobs (404 for other keys' jobs, as for operations)."""
    _prepare(request.app)
    state: State = request.app.state.state
    with state.db() as conn:
        row = conn.execute(_SELECT + " WHERE id = ? AND key_hash = ?",
                           (batch_id, key_hash(key))).fetchone()
    if row is None:
        raise ApiError(404, "BatchJobNotFound", f"Batch job '{batch_id}' does not exist.")
    return _job_json(state, row)
