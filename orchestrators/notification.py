"""The completion notification of ``batch_orchestrator``: ``notify_run`` on durable timers.

After the marker is written, and only when the run's input says ``settings.notify`` (the
starter knows whether ``BATCH_NOTIFY_URL`` is set; the URL and the secret never enter the
history), ``notify_run`` POSTs the event once per call. An answer of ``Retry`` (5xx, 429, no
connection) or a failed activity is tried again after :data:`NOTIFY_RETRY_SECONDS` (5 tries
over about 15 minutes); ``Refused`` (another 4xx) stops at once. The outcome is recorded in the
run's output (``notification``); it never changes the marker or the run's status.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from activities import notify_run
from orchestrators.clock import after
from orchestrators.failures import reason

Gen = Generator[Any, Any, Any]
# Waits before the 2nd to 5th try: 30 s, 1.5, 4 and 9 min (about 15 min in all).
NOTIFY_RETRY_SECONDS = (30, 90, 240, 540)
RETRY, FAILED = "Retry", "Failed"


def enabled(args: dict) -> bool:
    return bool((args.get("settings") or {}).get("notify"))


def notify(context: df.DurableOrchestrationContext, marker_name: str) -> Gen:
    """Deliver the run's completion event; return ``{outcome, attempts, httpStatus, message}``
    with outcome ``Delivered``, ``Refused``, ``Skipped`` or ``Failed`` (tries spent)."""
    payload = {"instanceId": context.instance_id, "markerName": marker_name}
    answer: dict = {}
    attempts = 0
    for delay in (*NOTIFY_RETRY_SECONDS, None):
        attempts += 1
        try:
            answer = yield context.call_activity(notify_run, payload)
        except Exception as exc:  # e.g. the marker could not be read: try again
            code, sentence = reason(exc)
            answer = {"outcome": RETRY, "httpStatus": None, "message": f"{code}: {sentence}"}
        if answer.get("outcome") != RETRY or delay is None:
            break
        yield context.create_timer(after(context.current_utc_datetime, delay))
    outcome = FAILED if answer.get("outcome") == RETRY else answer.get("outcome")
    if not context.is_replaying:
        logging.info("%s completion event %s after %d tries", context.instance_id, outcome,
                     attempts)
    return {"outcome": outcome, "attempts": attempts, "httpStatus": answer.get("httpStatus"),
            "message": answer.get("message") or ""}
