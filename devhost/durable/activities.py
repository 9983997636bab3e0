"""Activities on a bounded thread pool, each completion recorded exactly once.

A work item stays in the store until its completion is recorded: the completion event is posted
in the same transaction that deletes the work item, and only if the delete removed a row. After
a crash, every work item still present is run again (at-least-once, like the real host).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

try:  # newer azure-functions name the worker's activity (de)serialisation (1.26 does, 1.21.3 not)
    from azure.functions._durable_functions import df_dumps, df_loads
except ImportError:  # older azure-functions: the same JSON with the custom-object hooks
    from azure.functions._durable_functions import (
        _deserialize_custom_object,
        _serialize_custom_object,
    )

    def df_dumps(value: Any) -> str:
        return json.dumps(value, default=_serialize_custom_object)

    def df_loads(s: str, expected_type: type | None = None) -> Any:
        return json.loads(s, object_hook=_deserialize_custom_object)

from devhost.durable import events as ev
from devhost.durable.clock import Clock
from devhost.durable.store import Store, post_event

log = logging.getLogger("devhost.durable")


class Activity:
    """An activity function and the name of its ``activity_trigger`` parameter."""

    def __init__(self, func: Callable[..., Any], input_name: str) -> None:
        self.func = func
        self.input_name = input_name

    def invoke(self, input_text: str | None) -> str:
        """Decode the input like the worker's ActivityTriggerConverter, call, encode the result."""
        if input_text is None:
            value: Any = None
        else:
            try:
                value = df_loads(input_text)
            except json.JSONDecodeError:
                value = input_text
        result = self.func(**{self.input_name: value})
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
        return df_dumps(result)


async def _await(awaitable: Any) -> Any:
    return await awaitable


class ActivityPool:
    """Runs the ``activity`` work items of the store on ``workers`` threads."""

    def __init__(self, store: Store, activities: dict[str, Activity], clock: Clock,
                 workers: int = 8) -> None:
        self.store = store
        self.activities = activities
        self.clock = clock
        self.on_done: Callable[[], None] = lambda: None
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="activity")
        self._running: set[int] = set()
        self._lock = threading.Lock()

    def submit_pending(self) -> None:
        """Start every activity work item that is not running yet (called by the dispatcher)."""
        rows = self.store.query("SELECT * FROM work WHERE kind='activity' ORDER BY id")
        for row in rows:
            with self._lock:
                if row["id"] in self._running:
                    continue
                self._running.add(row["id"])
            self._pool.submit(self._run, dict(row))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, row: dict[str, Any]) -> None:
        name = str(row["name"])
        meta = json.loads(row["meta"]) if row["meta"] else {}
        try:
            activity = self.activities.get(name)
            if activity is None:
                raise LookupError(f"No activity function named '{name}'")
            result = activity.invoke(row["input"])
            done = ev.event(ev.TASK_COMPLETED, self.clock.now(), TaskScheduledId=row["seq"],
                            Result=result)
            done_meta = None
        except Exception as exc:
            # the message only: inputs and outputs may carry data that must not be logged
            log.warning("activity %s of instance %s failed: %s", name, row["instance_id"], exc)
            reason, details = failure_fields(name, exc)
            done = ev.event(ev.TASK_FAILED, self.clock.now(), TaskScheduledId=row["seq"],
                            Reason=reason, Details=details)
            retry = meta.get("retry")
            done_meta = {"retry": {**retry, "phase": "failed"}} if retry else None
        try:
            with self.store.tx() as db:
                if db.execute("DELETE FROM work WHERE id=?", (row["id"],)).rowcount == 1:
                    post_event(db, row["instance_id"], row["execution"], done, done_meta)
        finally:
            with self._lock:
                self._running.discard(row["id"])
            self.on_done()


def failure_fields(name: str, exc: BaseException) -> tuple[str, str]:
    """``Reason`` and ``Details`` of a ``TaskFailed`` event, as the real host writes them.

    The Python worker reports ``f"{type(exc).__name__}: {exc}"`` and the traceback
    (Azure/azure-functions-python-worker, ``azure_functions_worker/dispatcher.py``
    ``_serialize_exception``); the Functions host wraps them in an ``RpcException`` whose message
    is ``"Result: Failure\\nException: <message>\\nStack: <stack>"``; the Durable extension keeps
    the text between ``\\nException:`` and ``\\nStack:`` (with its leading space) and fails the
    task with ``Activity function '<name>' failed: <that text>``, the serialized exception as
    details (Azure/azure-functions-durable-extension, ``Listener/TaskActivityShim.cs`` and
    ``OutOfProcExceptionHelpers.cs``; DTFx ``Utils.SerializeCause``). The SDK then raises
    ``Exception(f"{Reason} \\n {Details}")`` in the orchestrator.
    """
    message = f"{type(exc).__name__}: {exc}"
    stack = "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__)))
    rpc_message = f"Result: Failure\nException: {message}\nStack: {stack}"
    friendly = rpc_message[rpc_message.index("\nException:") + len("\nException:"):
                           rpc_message.index("\nStack:")]
    rpc_type = "Microsoft.Azure.WebJobs.Script.Workers.Rpc.RpcException"
    details = {
        "$type": "System.Exception, System.Private.CoreLib", "ClassName": "System.Exception",
        "Message": friendly, "Data": None,
        "InnerException": {"$type": f"{rpc_type}, Microsoft.Azure.WebJobs.Script",
                           "ClassName": rpc_type, "Message": rpc_message, "Data": None,
                           "InnerException": None, "RemoteMessage": message,
                           "RemoteStackTrace": stack, "IsUserException": True},
        "HelpURL": None, "StackTraceString": None, "RemoteStackTraceString": None,
        "RemoteStackIndex": 0, "ExceptionMethod": None, "HResult": -2146233088, "Source": None,
    }
    return f"Activity function '{name}' failed: {friendly}", json.dumps(details)
