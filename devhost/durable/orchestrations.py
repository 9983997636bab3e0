"""Orchestration episodes: build the context, call the orchestrator, apply its actions.

One dispatcher thread runs every episode (so episodes of one instance never overlap), fires due
timers and hands scheduled activities to the pool. Each episode is a single store transaction:
the delivered inbox events are removed, the history grows by ``OrchestratorStarted``, those
events, the new scheduling events and ``OrchestratorCompleted``, and the new work is inserted.

Retries (``...WithRetry``) are the host's job, as in DTFx: a failed attempt is followed by a
retry timer and a new ``TaskScheduled``. The SDK numbers those timers and re-attempts with its
own counter while it replays, so an event that makes it allocate a number (a failed attempt, a
fired retry timer) is delivered first in its episode; the host then allocates the same number.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from devhost.durable import events as ev
from devhost.durable.activities import ActivityPool
from devhost.durable.clock import Clock, iso, parse_iso
from devhost.durable.store import Store, append_history, post_event

log = logging.getLogger("devhost.durable")

TERMINAL = ("Completed", "Failed", "Terminated")
OUT_OF_PROC_LABEL = "\n\n$OutOfProcData$:"


class Engine:
    """The durable task host: instances, episodes, timers and activities.

    Parameters
    ----------
    store : Store
        Persistent state.
    orchestrators : dict
        Orchestrator name → the handle registered by ``DFApp.orchestration_trigger``.
    activities : ActivityPool
        Runs activity work items.
    clock : Clock
        The (possibly scaled) orchestration clock.
    """

    def __init__(self, store: Store, orchestrators: dict[str, Callable[[Any], str]],
                 activities: ActivityPool, clock: Clock) -> None:
        self.store = store
        self.orchestrators = orchestrators
        self.activities = activities
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="durable-dispatcher", daemon=True)
        activities.on_done = self.wake

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._fire_due_timers()
                self.activities.submit_pending()
                busy = self._run_ready_episodes()
            except Exception:  # keep the host alive; the failure is in the log
                log.exception("durable dispatcher error")
                busy = False
            if not busy:
                self._wake.wait(timeout=self._idle_wait())
                self._wake.clear()

    def _idle_wait(self) -> float:
        rows = self.store.query("SELECT MIN(due) AS d FROM work WHERE kind='timer'")
        due = rows[0]["d"] if rows else None
        return 1.0 if due is None else min(1.0, self.clock.wall_delay(float(due)))

    # -- instances ---------------------------------------------------------------------------

    def create_instance(self, db: sqlite3.Connection, name: str, instance_id: str,
                        input_text: str | None, parent: tuple[str, int, int] | None = None,
                        meta: dict[str, Any] | None = None) -> None:
        """Create (or reset a finished) instance and queue its ``ExecutionStarted``.

        The caller checked that no instance with this id is Pending or Running.
        """
        now = self.clock.now()
        row = db.execute("SELECT execution FROM instances WHERE id=?", (instance_id,)).fetchone()
        execution = int(row["execution"]) + 1 if row else 0
        _clear(db, instance_id)
        db.execute("DELETE FROM instances WHERE id=?", (instance_id,))
        parent_id, parent_execution, parent_seq = parent or (None, None, None)
        db.execute(
            "INSERT INTO instances (id, name, status, input, created, updated, parent_id,"
            " parent_execution, parent_seq, execution, start_meta) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (instance_id, name, "Pending", input_text, now, now, parent_id, parent_execution,
             parent_seq, execution, json.dumps(meta) if meta else None))
        start = ev.event(ev.EXECUTION_STARTED, now, Name=name, Input=input_text, Version="",
                         ParentInstanceId=parent_id)
        post_event(db, instance_id, execution, start)
        self.wake()

    def terminate(self, db: sqlite3.Connection, instance_id: str, reason: str) -> None:
        """Mark a Pending/Running instance Terminated and tell its parent."""
        row = db.execute("SELECT * FROM instances WHERE id=?", (instance_id,)).fetchone()
        now = self.clock.now()
        output = json.dumps(reason)
        db.execute("UPDATE instances SET status='Terminated', output=?, updated=? WHERE id=?",
                   (output, now, instance_id))
        _clear(db, instance_id, keep_history=True)
        append_history(db, instance_id, [ev.event(2, now, Input=output)])
        self._notify_parent(db, row, failed=f"Terminated: {reason}", output=None)
        log.info("instance %s terminated", instance_id)

    # -- timers ------------------------------------------------------------------------------

    def _fire_due_timers(self) -> None:
        now = self.clock.now()
        due = self.store.query("SELECT * FROM work WHERE kind='timer' AND due<=? ORDER BY due",
                               (now,))
        for row in due:
            with self.store.tx() as db:
                if db.execute("DELETE FROM work WHERE id=?", (row["id"],)).rowcount != 1:
                    continue
                fired = ev.event(ev.TIMER_FIRED, now, TimerId=row["seq"], FireAt=row["input"])
                meta = json.loads(row["meta"]) if row["meta"] else None
                post_event(db, row["instance_id"], row["execution"], fired, meta)

    # -- episodes ----------------------------------------------------------------------------

    def _run_ready_episodes(self) -> bool:
        ready = self.store.query(
            "SELECT instance_id, MIN(id) AS first FROM inbox GROUP BY instance_id ORDER BY first")
        for row in ready:
            instance_id = str(row["instance_id"])
            try:
                self._episode(instance_id)
            except Exception as exc:  # a devhost bug must not spin on, or starve, the others
                log.exception("episode of %s failed inside devhost", instance_id)
                with self.store.tx() as db:
                    db.execute("UPDATE instances SET status='Failed', output=?, error=? WHERE id=?",
                               (json.dumps(f"devhost internal error: {exc}"), str(exc),
                                instance_id))
                    db.execute("DELETE FROM inbox WHERE instance_id=?", (instance_id,))
        return bool(ready)

    def _episode(self, instance_id: str) -> None:
        inst = self.store.instance(instance_id)
        messages = self.store.query("SELECT * FROM inbox WHERE instance_id=? ORDER BY id",
                                    (instance_id,))
        if inst is None or inst["status"] in TERMINAL:
            with self.store.tx() as db:  # events for a finished instance are dropped
                db.execute("DELETE FROM inbox WHERE instance_id=? AND id<=?",
                           (instance_id, messages[-1]["id"] if messages else -1))
            return
        stale = [m["id"] for m in messages if m["execution"] != inst["execution"]]
        batch = _pick_batch([m for m in messages if m["execution"] == inst["execution"]])
        if not batch:
            with self.store.tx() as db:
                db.executemany("DELETE FROM inbox WHERE id=?", [(i,) for i in stale])
            return
        Episode(self, inst, batch, stale).run()

    # -- completion --------------------------------------------------------------------------

    def _notify_parent(self, db: sqlite3.Connection, inst: sqlite3.Row | None,
                       failed: str | None, output: str | None) -> None:
        if inst is None or not inst["parent_id"]:
            return
        now = self.clock.now()
        seq = int(inst["parent_seq"])
        if failed is None:
            done = ev.event(ev.SUB_COMPLETED, now, TaskScheduledId=seq, Result=output)
            post_event(db, inst["parent_id"], inst["parent_execution"], done)
            return
        meta = json.loads(inst["start_meta"]) if inst["start_meta"] else {}
        retry = meta.get("retry")
        done = ev.event(ev.SUB_FAILED, now, TaskScheduledId=seq, Reason=failed, Details="")
        post_event(db, inst["parent_id"], inst["parent_execution"], done,
                   {"retry": {**retry, "phase": "failed"}} if retry else None)
        self.wake()


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
            "isReplaying": bool(old), "input": input_text, "upperSchemaVersion": 1,
            "history": old + self.new_events,
        }
        status, output, error, custom, actions = self._call(context)
        recorded: list[list[Any]] = json.loads(self.inst["actions"])
        flat = ev.flatten(actions)
        if status != "Failed":
            divergence = _diverges(recorded, flat)
            if divergence:
                status, error, output = "Failed", divergence, None
        continue_input: str | None = None
        if status != "Failed":
            for action in flat[len(recorded):]:
                try:
                    continue_input = self._schedule(action, continue_input)
                except _Unsupported as exc:
                    status, error = "Failed", str(exc)
                    break
                recorded.append(ev.action_key(action))
        if status in ("Running", "Completed") and continue_input is not None:
            status = "ContinuedAsNew"
        self._commit(status, output, error, custom, recorded, input_text, continue_input)
        _log_outcome(self.id, self.inst["name"], status, error, bool(old))
        e.wake()

    def _call(self, context: dict[str, Any]) -> tuple[str, Any, str | None, Any, Any]:
        handle = self.engine.orchestrators.get(self.inst["name"])
        if handle is None:
            return "Failed", None, f"No orchestrator function named '{self.inst['name']}'", None, []
        try:
            state = json.loads(handle(json.dumps(context)))
        except Exception as exc:  # the SDK raises with the state after a label
            message, _, state_text = str(exc).partition(OUT_OF_PROC_LABEL)
            state = json.loads(state_text) if state_text else {}
            error = f"Orchestrator function '{self.inst['name']}' failed: {message}"
            return "Failed", None, error, state.get("customStatus"), state.get("actions")
        if state.get("error"):
            error = f"Orchestrator function '{self.inst['name']}' failed: {state['error']}"
            return "Failed", None, error, state.get("customStatus"), state.get("actions")
        status = "Completed" if state.get("isDone") else "Running"
        return status, state.get("output"), None, state.get("customStatus"), state.get("actions")

    def _schedule(self, action: dict[str, Any], continue_input: str | None) -> str | None:
        kind = int(action["actionType"])
        name = action.get("functionName")
        if kind in (ev.CALL_ACTIVITY, ev.CALL_ACTIVITY_RETRY):
            seq = self._seq()
            self.new_events.append(ev.event(ev.TASK_SCHEDULED, self.now, seq, Name=name,
                                            Input=action.get("input")))
            retry = _retry_meta(action, "activity") if kind == ev.CALL_ACTIVITY_RETRY else None
            self.work.append(("activity", seq, name, action.get("input"), None,
                              {"retry": retry} if retry else None))
        elif kind in (ev.CALL_SUB, ev.CALL_SUB_RETRY):
            seq = self._seq()
            child = action.get("instanceId") or f"{self.id}:{seq}"
            self.new_events.append(ev.event(ev.SUB_CREATED, self.now, seq, Name=name,
                                            InstanceId=child, Input=action.get("input")))
            retry = _retry_meta(action, "sub", child) if kind == ev.CALL_SUB_RETRY else None
            self.children.append((child, str(name), action.get("input"), seq, retry))
        elif kind == ev.CREATE_TIMER:
            seq = self._seq()
            fire_at = str(action["fireAt"])
            self.new_events.append(ev.event(ev.TIMER_CREATED, self.now, seq, FireAt=fire_at))
            self.work.append(("timer", seq, None, fire_at, parse_iso(fire_at), None))
        elif kind == ev.CONTINUE_AS_NEW_ACTION:
            return action.get("input")
        elif kind == ev.WAIT_EVENT:
            pass  # EventRaised events are appended when they arrive; the SDK matches them
        else:
            raise _Unsupported(f"devhost does not support {ev.describe(ev.action_key(action))} "
                               "actions (entities and durable HTTP are not implemented)")
        return continue_input

    def _retry_bookkeeping(self, retry: dict[str, Any]) -> None:
        """After a failed attempt: the retry timer. After that timer: the next attempt."""
        if retry["phase"] == "failed":
            seq = self._seq()
            delay_ms = _retry_delay_ms(retry["options"], int(retry["attempt"]))
            fire_at = self.now + delay_ms / 1000.0
            self.new_events.append(ev.event(ev.TIMER_CREATED, self.now, seq, FireAt=iso(fire_at)))
            self.work.append(("timer", seq, None, iso(fire_at), fire_at,
                              {"retry": {**retry, "phase": "timer"}}))
            return
        attempt = int(retry["attempt"]) + 1
        if attempt > int(retry["options"].get("maxNumberOfAttempts", 1)):
            return  # the SDK fails the task after this last timer
        seq = self._seq()
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
                recorded: list[list[Any]], input_text: str | None,
                continue_input: str | None) -> None:
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
                 self.next_seq, json.dumps(recorded), self.id))
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('clock', ?)",
                       (repr(self.now),))
            if status in TERMINAL:
                _clear(db, self.id, keep_history=True)
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
        _clear(db, self.id, keep_inbox=True)
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


def _pick_batch(messages: list[sqlite3.Row]) -> list[sqlite3.Row]:
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


def _retry_meta(action: dict[str, Any], kind: str, child: str | None = None) -> dict[str, Any]:
    return {"kind": kind, "name": action.get("functionName"), "input": action.get("input"),
            "instanceId": child, "attempt": 1, "options": action.get("retryOptions") or {},
            "phase": "running"}


def _retry_delay_ms(options: dict[str, Any], attempt: int) -> float:
    first = float(options.get("firstRetryIntervalInMilliseconds", 1000))
    backoff = float(options.get("backoffCoefficient", 1) or 1)
    delay = first * backoff ** (attempt - 1)
    cap = options.get("maxRetryIntervalInMilliseconds")
    return min(delay, float(cap)) if cap else delay


def _clear(db: sqlite3.Connection, instance_id: str, keep_history: bool = False,
           keep_inbox: bool = False) -> None:
    db.execute("DELETE FROM work WHERE instance_id=?", (instance_id,))
    if not keep_inbox:
        db.execute("DELETE FROM inbox WHERE instance_id=?", (instance_id,))
    if not keep_history:
        db.execute("DELETE FROM history WHERE instance_id=?", (instance_id,))


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
