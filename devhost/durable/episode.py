"""One orchestration episode: build the context, call the orchestrator, apply its actions.

An episode is a single store transaction: the delivered inbox events are removed, the history
grows by ``OrchestratorStarted``, those events, the new scheduling events and
``OrchestratorCompleted``, and the new work (activities, timers, child instances) is inserted.

Retries (``...WithRetry``) are the host's job, as in DTFx: a failed attempt is followed by a
retry timer and a new ``TaskScheduled``. The SDK numbers those timers and re-attempts with its
own counter while it replays, so an event that makes it allocate a number (a failed attempt, a
fired retry timer) is delivered first in its episode; the host then allocates the same number.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import TYPE_CHECKING, Any

from devhost.durable import events as ev
from devhost.durable.clock import iso, parse_iso
from devhost.durable.replay import HOST_CONTEXT, Recorded, custom_status_error, walk
from devhost.durable.store import TERMINAL, append_history, clear_instance, post_event

if TYPE_CHECKING:
    from devhost.durable.orchestrations import Engine

log = logging.getLogger("devhost.durable")

OUT_OF_PROC_LABEL = "\n\n$OutOfProcData$:"


class Episode:
    """One call of an orchestrator with its history, and the store transaction that follows."""

    def __init__(self, engine: Engine, inst: sqlite3.Row, batch: list[sqlite3.Row],
                 stale: list[int]) -> None:
        self.engine = engine
        self.inst = inst
        self.id = str(inst["id"])
        self.batch = batch
        self.stale = stale
        self.now = engine.clock.now()
        self.next_seq = int(inst["next_seq"])
        self.new_events: list[dict[str, Any]] = []
        self.work: list[tuple[str, int, str | None, str | None, float | None, Any]] = []
        self.children: list[tuple[str, str, str | None, int, dict[str, Any] | None]] = []
        self.recorded = Recorded.loads(inst["actions"])

    def _seq(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def run(self) -> None:
        e = self.engine
        input_text = self.inst["input"]
        self.new_events.append(ev.event(ev.ORCHESTRATOR_STARTED, self.now))
        for message in self.batch:
            event = json.loads(message["event"])
            if event["EventType"] == ev.EXECUTION_STARTED:
                input_text = event.get("Input")
            self.new_events.append(event)
            meta = json.loads(message["meta"]) if message["meta"] else {}
            if meta.get("retry"):
                self._retry_bookkeeping(meta["retry"])
        old = self.engine.store.history(self.id)
        for event in old:
            event["IsPlayed"] = True
        context = {
            "instanceId": self.id, "parentInstanceId": self.inst["parent_id"],
            "isReplaying": bool(old), "input": input_text, **HOST_CONTEXT,
            "history": old + self.new_events,
        }
        status, output, error, custom, actions, schema = self._call(context)
        flat = ev.flatten(actions)
        if status != "Failed":
            too_big = custom_status_error(custom)
            if too_big:  # the extension's SetCustomStatus runs before the replay, and throws
                status, output = "Failed", None
                error = f"Orchestrator function '{self.inst['name']}' failed: {too_big}"
        divergence = _diverges(self.recorded.keys, flat) if status != "Failed" else None
        continue_input: str | None = None
        if divergence:
            status, error, output = "Failed", divergence, None
        elif not (status == "Failed" and not actions):
            history = old + self.new_events
            try:
                invoked, blocked = walk(actions, schema, self.recorded.completion(flat, history))
            except ValueError as exc:
                status, error, output, invoked, blocked = "Failed", str(exc), None, 0, False
            if blocked:
                # The extension still awaits an action: nothing after it is scheduled, and the
                # orchestration neither completes nor fails in this episode (replay.py).
                status, output, error = "Running", None, None
            if status != "Failed":
                for action in flat[len(self.recorded.keys):invoked]:
                    try:
                        continue_input = self._schedule(action, continue_input)
                    except _Unsupported as exc:
                        status, error = "Failed", str(exc)
                        break
        if status in ("Running", "Completed") and continue_input is not None:
            status = "ContinuedAsNew"
        self._commit(status, output, error, custom, input_text, continue_input)
        _log_outcome(self.id, self.inst["name"], status, error, bool(old))
        e.wake()

    def _call(self, context: dict[str, Any]) -> tuple[str, Any, str | None, Any, Any, int]:
        """Call the orchestrator: (status, output, error, custom status, actions, schema)."""
        handle = self.engine.orchestrators.get(self.inst["name"])
        if handle is None:
            error = f"No orchestrator function named '{self.inst['name']}'"
            return "Failed", None, error, None, [], 0
        try:
            state = json.loads(handle(json.dumps(context)))
        except Exception as exc:  # the SDK raises with the state after a label
            message, _, state_text = str(exc).partition(OUT_OF_PROC_LABEL)
            state = json.loads(state_text) if state_text else {}
            error = f"Orchestrator function '{self.inst['name']}' failed: {message}"
            return ("Failed", None, error, state.get("customStatus"), state.get("actions"),
                    _schema(state))
        if state.get("error"):
            error = f"Orchestrator function '{self.inst['name']}' failed: {state['error']}"
            return ("Failed", None, error, state.get("customStatus"), state.get("actions"),
                    _schema(state))
        status = "Completed" if state.get("isDone") else "Running"
        return (status, state.get("output"), None, state.get("customStatus"),
                state.get("actions"), _schema(state))

    def _schedule(self, action: dict[str, Any], continue_input: str | None) -> str | None:
        kind = int(action["actionType"])
        name = action.get("functionName")
        if kind in (ev.CALL_ACTIVITY, ev.CALL_ACTIVITY_RETRY):
            seq = self._seq()
            self.new_events.append(ev.event(ev.TASK_SCHEDULED, self.now, seq, Name=name,
                                            Input=action.get("input")))
            retry = (_retry_meta(action, "activity", seq) if kind == ev.CALL_ACTIVITY_RETRY
                     else None)
            self.work.append(("activity", seq, name, action.get("input"), None,
                              {"retry": retry} if retry else None))
        elif kind in (ev.CALL_SUB, ev.CALL_SUB_RETRY):
            seq = self._seq()
            child = action.get("instanceId") or f"{self.id}:{seq}"
            self.new_events.append(ev.event(ev.SUB_CREATED, self.now, seq, Name=name,
                                            InstanceId=child, Input=action.get("input")))
            retry = _retry_meta(action, "sub", seq, child) if kind == ev.CALL_SUB_RETRY else None
            self.children.append((child, str(name), action.get("input"), seq, retry))
        elif kind == ev.CREATE_TIMER:
            seq = self._seq()
            fire_at = str(action["fireAt"])
            self.new_events.append(ev.event(ev.TIMER_CREATED, self.now, seq, FireAt=fire_at))
            self.work.append(("timer", seq, None, fire_at, parse_iso(fire_at), None))
        elif kind == ev.CONTINUE_AS_NEW_ACTION:
            self.recorded.add(action, None)
            return action.get("input")
        elif kind == ev.WAIT_EVENT:
            seq = None  # EventRaised events are appended when they arrive; the SDK matches them
        else:
            raise _Unsupported(f"devhost does not support {ev.describe(ev.action_key(action))} "
                               "actions (entities and durable HTTP are not implemented)")
        self.recorded.add(action, seq)
        return continue_input

    def _retry_bookkeeping(self, retry: dict[str, Any]) -> None:
        """After a failed attempt: the retry timer. After that timer: the next attempt."""
        origin = retry.get("origin")
        if retry["phase"] == "failed":
            seq = self._seq()
            self.recorded.alias(seq, origin)
            delay_ms = _retry_delay_ms(retry["options"], int(retry["attempt"]))
            fire_at = self.now + delay_ms / 1000.0
            self.new_events.append(ev.event(ev.TIMER_CREATED, self.now, seq, FireAt=iso(fire_at)))
            self.work.append(("timer", seq, None, iso(fire_at), fire_at,
                              {"retry": {**retry, "phase": "timer"}}))
            return
        attempt = int(retry["attempt"]) + 1
        if attempt > int(retry["options"].get("maxNumberOfAttempts", 1)):
            self.recorded.finish(origin)  # the SDK fails the task after this last timer
            return
        seq = self._seq()
        self.recorded.alias(seq, origin)
        next_retry = {**retry, "attempt": attempt, "phase": "running"}
        if retry["kind"] == "activity":
            self.new_events.append(ev.event(ev.TASK_SCHEDULED, self.now, seq, Name=retry["name"],
                                            Input=retry["input"]))
            self.work.append(("activity", seq, retry["name"], retry["input"], None,
                              {"retry": next_retry}))
        else:
            child = retry["instanceId"]
            self.new_events.append(ev.event(ev.SUB_CREATED, self.now, seq, Name=retry["name"],
                                            InstanceId=child, Input=retry["input"]))
            self.children.append((child, retry["name"], retry["input"], seq, next_retry))

    def _commit(self, status: str, output: Any, error: str | None, custom: Any,
                input_text: str | None, continue_input: str | None) -> None:
        e = self.engine
        self.new_events.append(ev.event(ev.ORCHESTRATOR_COMPLETED, self.now))
        execution = int(self.inst["execution"])
        out_text = json.dumps(error) if status == "Failed" else (
            json.dumps(output) if status == "Completed" else None)
        with e.store.tx() as db:
            ids = [m["id"] for m in self.batch] + self.stale
            db.executemany("DELETE FROM inbox WHERE id=?", [(i,) for i in ids])
            now = db.execute("SELECT status, execution FROM instances WHERE id=?",
                             (self.id,)).fetchone()
            if now is None or now["status"] in TERMINAL or now["execution"] != execution:
                return  # terminated or purged while the orchestrator ran: drop this episode
            append_history(db, self.id, self.new_events)
            for kind, seq, name, payload, due, meta in self.work:
                db.execute("INSERT INTO work (instance_id, execution, kind, seq, name, input, due,"
                           " meta) VALUES (?,?,?,?,?,?,?,?)",
                           (self.id, execution, kind, seq, name, payload, due,
                            json.dumps(meta) if meta else None))
            db.execute(
                "UPDATE instances SET status=?, input=?, output=?, custom_status=?, error=?,"
                " updated=?, next_seq=?, actions=? WHERE id=?",
                ("Running" if status == "ContinuedAsNew" else status, input_text, out_text,
                 json.dumps(custom) if custom is not None else None, error, self.now,
                 self.next_seq, self.recorded.dumps(), self.id))
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('clock', ?)",
                       (repr(self.now),))
            if status in TERMINAL:
                clear_instance(db, self.id, keep_history=True)
                e._notify_parent(db, self.inst, failed=error if status == "Failed" else None,
                                 output=out_text)
                return
            for child, name, child_input, seq, retry in self.children:
                self._start_child(db, child, name, child_input, seq, retry)
            if continue_input is not None:
                self._continue_as_new(db, execution, continue_input)

    def _start_child(self, db: sqlite3.Connection, child: str, name: str,
                     child_input: str | None, seq: int, retry: dict[str, Any] | None) -> None:
        e = self.engine
        row = db.execute("SELECT status FROM instances WHERE id=?", (child,)).fetchone()
        if row is not None and row["status"] not in TERMINAL:
            failed = ev.event(ev.SUB_FAILED, self.now, TaskScheduledId=seq, Details="",
                              Reason=f"An orchestration with instance id '{child}' is running")
            post_event(db, self.id, int(self.inst["execution"]), failed)
            return
        e.create_instance(db, name, child, child_input,
                          parent=(self.id, int(self.inst["execution"]), seq),
                          meta={"retry": retry} if retry else None)

    def _continue_as_new(self, db: sqlite3.Connection, execution: int, new_input: str) -> None:
        """Start the next execution: fresh history, same id; raised events carry over."""
        clear_instance(db, self.id, keep_inbox=True)
        db.execute("UPDATE instances SET execution=?, next_seq=0, actions='[]', input=?,"
                   " status='Running' WHERE id=?", (execution + 1, new_input, self.id))
        db.execute("UPDATE inbox SET execution=? WHERE instance_id=? AND execution=?",
                   (execution + 1, self.id, execution))
        start = ev.event(ev.EXECUTION_STARTED, self.now, Name=self.inst["name"], Input=new_input,
                         Version="", ParentInstanceId=self.inst["parent_id"])
        # the start goes before any carried-over event: re-insert those behind it
        carried = db.execute("SELECT * FROM inbox WHERE instance_id=? ORDER BY id",
                             (self.id,)).fetchall()
        db.execute("DELETE FROM inbox WHERE instance_id=?", (self.id,))
        post_event(db, self.id, execution + 1, start)
        for row in carried:
            db.execute("INSERT INTO inbox (instance_id, execution, event, meta) VALUES (?,?,?,?)",
                       (self.id, execution + 1, row["event"], row["meta"]))


class _Unsupported(Exception):
    """An action devhost does not implement (entities, durable HTTP)."""


def pick_batch(messages: list[sqlite3.Row]) -> list[sqlite3.Row]:
    """The events of one episode: stop before a retry event; a retry event goes alone."""
    batch: list[sqlite3.Row] = []
    for message in messages:
        retry = json.loads(message["meta"]).get("retry") if message["meta"] else None
        is_retry = bool(retry) and retry.get("phase") in ("failed", "timer")
        if is_retry and batch:
            break
        batch.append(message)
        if is_retry:
            break
    return batch


def _diverges(recorded: list[list[Any]], flat: list[dict[str, Any]]) -> str | None:
    """Compare the replayed actions with the ones recorded in earlier episodes."""
    for index, expected in enumerate(recorded):
        got = ev.action_key(flat[index]) if index < len(flat) else None
        if got != expected:
            return (f"Non-deterministic workflow detected: action #{index} diverges from the "
                    f"history: expected {ev.describe(expected)}, got {ev.describe(got)}")
    return None


def _retry_meta(action: dict[str, Any], kind: str, origin: int,
                child: str | None = None) -> dict[str, Any]:
    return {"kind": kind, "name": action.get("functionName"), "input": action.get("input"),
            "instanceId": child, "attempt": 1, "options": action.get("retryOptions") or {},
            "phase": "running", "origin": origin}


def _schema(state: dict[str, Any]) -> int:
    """The SDK's ``schemaVersion`` (absent: the Original schema, 0)."""
    try:
        return int(state.get("schemaVersion") or 0)
    except (TypeError, ValueError):
        return 0


def _retry_delay_ms(options: dict[str, Any], attempt: int) -> float:
    first = float(options.get("firstRetryIntervalInMilliseconds", 1000))
    backoff = float(options.get("backoffCoefficient", 1) or 1)
    delay = first * backoff ** (attempt - 1)
    cap = options.get("maxRetryIntervalInMilliseconds")
    return min(delay, float(cap)) if cap else delay


def _log_outcome(instance_id: str, name: str, status: str, error: str | None,
                 replayed: bool) -> None:
    if status == "Completed":
        log.info("instance %s (%s) completed", instance_id, name)
    elif status == "Failed":
        log.warning("instance %s (%s) failed: %s", instance_id, name, error)
    elif status == "ContinuedAsNew":
        log.info("instance %s (%s) continued as new", instance_id, name)
    elif not replayed:
        log.info("instance %s (%s) started", instance_id, name)
