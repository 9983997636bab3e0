"""The batch job runner: one job from input blob to output and error blobs, on a worker thread.

Steps, with the operation's ``percentComplete`` after each:

    read and parse input (10) → score slices of requests, each in ONE vectorised call,
    streaming the output in staged blocks (10 → 89: a request counts ``SCORE_SHARE`` once
    scored, the rest once written) → commit output, write error blob (90) → Succeeded (100)

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
from recoservice.batch_output import encode_results
from recoservice.blobio import BlobIOError
from recoservice.errors import ApiError
from recoservice.faults import FaultRule
from recoservice.scoring import NO_SEED_KNOWN, NONE_KNOWN, Scorer, _gc_paused, unknown_user
from recoservice.state import State

if TYPE_CHECKING:
    from recoservice.batch import JobSpec

log = logging.getLogger("recoservice.batch")

STUCK_POLL_SECONDS = 0.1
# Recommendations per scorer call (requests per slice = this / numberOfResults): large
# enough to stay vectorised (the scorer groups rows of similar width, which small slices
# cannot: 2,000-request slices cost ~4x the CPU of one 44,000-request call; a whole 2 MB
# input at k = 10 is one slice), small enough to bound memory (~50 MB of scores as lists).
SLICE_RECOMMENDATIONS = 500_000
# Results are encoded and handed to the writer this many requests at a time, so the encoded
# JSON in memory stays a few MB whatever the slice size.
ENCODE_REQUESTS = 2_000
# Share of a request's work in the scorer (the rest: encoding and writing its result), so
# percentComplete moves with time: a slice is scored in one call, and a 50,000-request chunk
# is one slice, so without it the percentage stood at 10 during the scoring (~40 % of a
# cached job's time at k = 10, py-spy) and a client that estimates the end from the rate of
# progress (recobatch's chunk orchestrator) polled seconds after the job had ended.
SCORE_SHARE = 0.4
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
    # Only NotStarted becomes Running, in one statement (State.claim): a plain update could
    # overwrite a "Cancelling" that arrived while the job waited for a worker.
    state.claim(op_id)


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
    try:
        _score_and_write(state, scorer, op_id, spec, requests, writer, errors)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.close()
    elif action == "invalidOutput":
        blobio.write_blob(spec.output, INVALID_OUTPUT, "application/json")
    errors.sort(key=lambda pair: pair[0])
    error_text = "".join(line + "\n" for _, line in errors)
    blobio.write_blob(spec.error, error_text.encode("utf-8"), "text/plain; charset=utf-8")
    state.update_operation(op_id, percent_complete=90)
    return {"requests": len(requests), "errors": len(errors)}


def _score_and_write(state: State, scorer: Scorer, op_id: str, spec: JobSpec,
                     requests: list[Any], writer: blobio.BlockWriter | None,
                     errors: list[tuple[int, str]]) -> None:
    """Score every slice into ``writer`` (staged as it goes), collecting request errors."""
    percent = 10
    first = True
    scored = 0

    def progress(done: int) -> None:
        # Scoring and writing take 10 → 89 (each request SCORE_SHARE of its work when
        # scored, the rest when written); the last step (blobs committed) is 90.
        nonlocal percent
        now = 10 + int(79 * (SCORE_SHARE * scored + (1 - SCORE_SHARE) * done) / len(requests))
        if now > percent:
            percent = now
            state.update_operation(op_id, percent_complete=percent)

    def on_scored(count: int) -> None:
        nonlocal scored
        scored = count
        progress(done)

    done = 0
    for done, encoded, slice_errors in score_slices(scorer, spec, requests, on_scored):
        errors.extend(slice_errors)
        if writer is not None:
            writer.write(encoded if first else b", " + encoded)
        first = False
        progress(done)
        _check_cancel(state, op_id)
    if writer is not None:
        writer.write(b"]}")


def parse_input(data: bytes) -> list[Any]:
    """The ``requests`` list of an input blob; ``_JobFailed`` when it is not the format."""
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _JobFailed(f"Input blob is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("requests"), list):
        raise _JobFailed('Input blob is not the documented format {"requests": [...]}.')
    return list(doc["requests"])


def score_slices(scorer: Scorer, spec: JobSpec, requests: list[Any],
                 on_scored: Callable[[int], None] | None = None
                 ) -> Iterator[tuple[int, bytes, list[tuple[int, str]]]]:
    """Score the requests slice by slice, each slice in ONE vectorised scorer call.

    Slicing bounds memory (a 2 MB input at 100 results is ~1 GB of JSON), lets the runner
    check for cancel between slices, and keeps each GIL-holding step short so the service's
    event loop stays responsive. Results are encoded from pre-encoded pieces
    (``recoservice.batch_output``), never through per-result dicts.

    ``on_scored`` (optional) is called after each slice is scored with the number of requests
    scored so far (before their results are encoded), for progress.

    Yields
    ------
    done, encoded, errors
        Requests handled so far; the results of the next (at most ``ENCODE_REQUESTS``)
        requests, encoded and joined with ``", "`` (UTF-8); ``(index, error line)`` of their
        request-level problems.
    """
    users = spec.api_name == "UserRecommend"
    check = _user_request if users else _item_request
    score = scorer.score_users if users else scorer.score_items
    step = max(1, SLICE_RECOMMENDATIONS // spec.number_of_results)
    for start in range(0, len(requests), step):
        checked = [check(req) for req in requests[start:start + step]]
        inputs = [value for _, value, problem in checked if problem is None]
        raw = (score(spec.model_id, spec.build_id, inputs, spec.number_of_results,
                     minimal_score=spec.minimal_score) if inputs else None)
        if on_scored is not None:
            on_scored(min(len(requests), start + step))
        rows: list[int] = []
        errors: list[tuple[int, str]] = []
        scored = 0
        for i, (_, value, problem) in enumerate(checked, start):
            row = -1
            if problem is None and raw is not None:
                row, scored = scored, scored + 1
                if raw.reason[row] == NONE_KNOWN:
                    problem = unknown_user(value) if users else NO_SEED_KNOWN
            if problem:
                errors.append((i, f"request {i}: {problem}"))
            rows.append(row)
        for part in range(0, len(checked), ENCODE_REQUESTS):
            end = min(len(checked), part + ENCODE_REQUESTS)
            with _gc_paused():
                results = encode_results(raw, rows[part:end],
                                         [echo for echo, _, _ in checked[part:end]],
                                         spec.include_metadata)
            yield (start + end, ", ".join(results).encode("utf-8"),
                   [err for err in errors if start + part <= err[0] < start + end])


def _item_request(req: Any) -> tuple[dict[str, Any], Any, str | None]:
    """(echo for the output, seed list to score, problem) of one ItemRecommend request."""
    if type(req) is dict:  # the usual case first: a list of non-empty strings
        seeds = req.get("SeedItems")
        if type(seeds) is list and seeds and all(type(s) is str and s for s in seeds):
            return {"seedItems": seeds}, seeds, None
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
