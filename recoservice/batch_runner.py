"""The batch job runner: one job from input blob to output and error blobs, on a worker thread.

Steps, with the operation's ``percentComplete`` after each:

    read and parse input (10) → score slices of requests, each in ONE vectorised call,
    streaming the output in staged blocks (10 → 89) → commit output, write error blob (90)
    → Succeeded (100)

A cancel request (``DELETE /operations/{id}`` sets ``Cancelling``) is honoured between steps
and slices: the operation ends ``Cancelled`` and no output blob appears (blocks are committed
only at the end). Whole-job problems end it ``Failed`` with a plain sentence
(input over 2 MB with its size, input not JSON or not ``{"requests": [...]}``, a blob storage
error, the scorer refusing). Request-level problems do not: each becomes one error-blob line
``request <i>: <problem>`` (``i`` is the 0-based index in ``requests``), the request keeps its
place in the output with no recommendations, and the error blob is empty when there are none.

Output format (one result per request, in order)::

    {"results": [{"request": {"seedItems": [...]}, "recommendations": [
        {"items": [{"itemId", "name", "metadata"}], "rating": 0.7, "reasoning": ["..."]}]}]}

with ``{"request": {"userId": ...}}`` for ``UserRecommend``. A ``job`` fault rule taken when
the job starts (see ``recoservice.faults``) changes one step: ``fail``, ``stuck``,
``skipOutput`` or ``invalidOutput``.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from recoservice import blobio
from recoservice.blobio import BlobIOError
from recoservice.errors import ApiError
from recoservice.faults import FaultRule
from recoservice.scoring import Scorer
from recoservice.state import State

if TYPE_CHECKING:
    from recoservice.batch import JobSpec

log = logging.getLogger("recoservice.batch")

STUCK_POLL_SECONDS = 0.1
# Recommendations per scorer call: large enough to stay vectorised, small enough to keep
# memory and each GIL-holding step small (requests per slice = this / numberOfResults).
SLICE_RECOMMENDATIONS = 20_000
# Written by the ``invalidOutput`` fault: what a truncated upload would leave behind.
INVALID_OUTPUT = b'{"results": [{"request": '


class _Cancelled(Exception):
    pass


class _JobFailed(Exception):
    pass


class WorkerPool:
    """A few daemon threads; daemon so a ``stuck`` job never keeps the process from exiting."""

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
            except Exception:  # one job's crash must not kill the worker
                log.exception("batch worker task failed")


def run_job(state: State, scorer: Scorer, rule: FaultRule | None, op_id: str,
            spec: JobSpec) -> None:
    """Run one job until its operation is Succeeded, Failed or Cancelled; never raises."""
    try:
        _start(state, op_id)
        _check_cancel(state, op_id)
        state.update_operation(op_id, percent_complete=0)
        result = _execute(state, scorer, rule, op_id, spec)
        state.update_operation(op_id, status="Succeeded", percent_complete=100,
                               message="Batch job completed.", result=result)
    except _Cancelled:
        state.update_operation(op_id, status="Cancelled", message="Batch job cancelled.")
    except (_JobFailed, BlobIOError) as exc:
        state.update_operation(op_id, status="Failed", message=spec.scrub(str(exc)))
    except ApiError as exc:  # the scorer refused (e.g. build deleted, no user-to-item)
        state.update_operation(op_id, status="Failed", message=spec.scrub(exc.message))
    except Exception as exc:  # the operation must still end; say what broke, never the token
        log.error("batch job %s crashed: %s", op_id, spec.scrub(repr(exc)))
        state.update_operation(op_id, status="Failed",
                               message=f"Internal error: {type(exc).__name__}")


def _start(state: State, op_id: str) -> None:
    # Only NotStarted becomes Running, in one statement: a plain update could overwrite a
    # "Cancelling" that arrived while the job waited for a worker.
    with state.db() as conn:
        conn.execute("UPDATE operations SET status = 'Running' WHERE id = ? "
                     "AND status = 'NotStarted'", (op_id,))


def _check_cancel(state: State, op_id: str) -> None:
    if state.is_cancel_requested(op_id):
        raise _Cancelled


def _execute(state: State, scorer: Scorer, rule: FaultRule | None, op_id: str,
             spec: JobSpec) -> dict[str, Any]:
    action = rule.action if rule is not None else None
    if rule is not None and action == "fail":
        raise _JobFailed(rule.message)
    if action == "stuck":
        pause = threading.Event()
        while not state.is_cancel_requested(op_id):
            pause.wait(STUCK_POLL_SECONDS)
        raise _Cancelled

    requests = parse_input(blobio.read_input(spec.input))
    state.update_operation(op_id, percent_complete=10)
    _check_cancel(state, op_id)

    writer = None
    if action is None:
        writer = blobio.BlockWriter(spec.output, "application/json")
        writer.write(b'{"results": [')
    errors: list[tuple[int, str]] = []
    percent = 10
    for done, results, slice_errors in score_slices(scorer, spec, requests):
        errors.extend(slice_errors)
        if writer is not None:
            writer.write(b", ".join(results) if done == len(results)
                         else b", " + b", ".join(results))
        # Scoring and writing take 10 → 89; the last step (blobs committed) is 90.
        if 10 + 79 * done // len(requests) > percent:
            percent = 10 + 79 * done // len(requests)
            state.update_operation(op_id, percent_complete=percent)
        _check_cancel(state, op_id)
    if writer is not None:
        writer.write(b"]}")
        writer.close()
    elif action == "invalidOutput":
        blobio.write_blob(spec.output, INVALID_OUTPUT, "application/json")
    errors.sort(key=lambda pair: pair[0])
    error_text = "".join(line + "\n" for _, line in errors)
    blobio.write_blob(spec.error, error_text.encode("utf-8"), "text/plain; charset=utf-8")
    state.update_operation(op_id, percent_complete=90)
    return {"requests": len(requests), "errors": len(errors)}


def parse_input(data: bytes) -> list[Any]:
    """The ``requests`` list of an input blob; ``_JobFailed`` when it is not the format."""
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _JobFailed(f"Input blob is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("requests"), list):
        raise _JobFailed('Input blob is not the documented format {"requests": [...]}.')
    return list(doc["requests"])


def score_slices(scorer: Scorer, spec: JobSpec, requests: list[Any]
                 ) -> Iterator[tuple[int, list[bytes], list[tuple[int, str]]]]:
    """Score the requests slice by slice, each slice in ONE vectorised scorer call.

    Slicing bounds memory (a 2 MB input at 100 results is ~1 GB of JSON), lets the runner
    check for cancel between slices, and keeps each GIL-holding step short so the service's
    event loop stays responsive.

    Yields
    ------
    done, results, errors
        Requests handled so far; the encoded output result of each request of the slice,
        in order; ``(index, error line)`` of the slice's request-level problems.
    """
    check = _user_request if spec.api_name == "UserRecommend" else _item_request
    call = (scorer.recommend_users if spec.api_name == "UserRecommend"
            else scorer.recommend_items)
    step = max(1, SLICE_RECOMMENDATIONS // spec.number_of_results)
    for start in range(0, len(requests), step):
        checked = [check(req) for req in requests[start:start + step]]
        inputs = [value for _, value, problem in checked if problem is None]
        scored = iter(call(spec.model_id, spec.build_id, inputs, spec.number_of_results,
                           include_metadata=spec.include_metadata,
                           minimal_score=spec.minimal_score) if inputs else [])
        results: list[bytes] = []
        errors: list[tuple[int, str]] = []
        for i, (echo, _, problem) in enumerate(checked, start):
            recs: list[dict[str, Any]] = []
            if problem is None:
                item = next(scored)
                recs = [_recommendation(r) for r in item.recommendations]
                problem = item.error
            if problem:
                errors.append((i, f"request {i}: {problem}"))
            results.append(_encode({"request": echo, "recommendations": recs}))
        yield start + len(checked), results, errors


def _encode(result: dict[str, Any]) -> bytes:
    return json.dumps(result, ensure_ascii=False).encode("utf-8")


def _item_request(req: Any) -> tuple[dict[str, Any], Any, str | None]:
    """(echo for the output, seed list to score, problem) of one ItemRecommend request."""
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
    """(echo for the output, user id to score, problem) of one UserRecommend request."""
    if not isinstance(req, dict):
        return {"userId": None}, None, "not an object"
    user = req.get("UserId", req.get("userId"))
    if user is None:
        return {"userId": None}, None, "UserId missing"
    if not isinstance(user, str | int) or isinstance(user, bool) or str(user) == "":
        return {"userId": user}, None, "UserId must be a non-empty string"
    return {"userId": user}, str(user), None


def _recommendation(rec: dict[str, Any]) -> dict[str, Any]:
    """A scorer recommendation as an output item set (one item for item-to-item)."""
    return {
        "items": [{"itemId": rec["itemId"], "name": rec.get("name", ""),
                   "metadata": rec.get("metadata") or ""}],
        "rating": rec["rating"],
        "reasoning": list(rec.get("reasoning") or []),
    }
