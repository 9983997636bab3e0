"""The durable dispatcher: instances, due timers, activities and episodes, one at a time.

One dispatcher thread runs every episode (so episodes of one instance never overlap; see
``episode.py``), fires due timers (on the scaled clock) and hands scheduled activities to the
pool. Completions and raised events wait in each instance's inbox until its next episode.
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
from devhost.durable.clock import Clock
from devhost.durable.episode import Episode, pick_batch
from devhost.durable.store import (
    TERMINAL,
    Store,
    append_history,
    clear_instance,
    post_event,
)

log = logging.getLogger("devhost.durable")



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
        clear_instance(db, instance_id)
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
        clear_instance(db, instance_id, keep_history=True)
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
                self._fail_inside(instance_id, exc)
        return bool(ready)

    def _fail_inside(self, instance_id: str, exc: Exception) -> None:
        """End an instance whose episode devhost itself could not run, as a failure.

        Its pending work goes, and its parent hears of it (else the parent would wait forever).
        """
        message = f"devhost internal error: {exc}"
        with self.store.tx() as db:
            inst = db.execute("SELECT * FROM instances WHERE id=?", (instance_id,)).fetchone()
            if inst is None or inst["status"] in TERMINAL:  # its end is recorded already
                db.execute("DELETE FROM inbox WHERE instance_id=?", (instance_id,))
                return
            db.execute("UPDATE instances SET status='Failed', output=?, error=?, updated=?"
                       " WHERE id=?", (json.dumps(message), message, self.clock.now(),
                                       instance_id))
            clear_instance(db, instance_id, keep_history=True)
            self._notify_parent(db, inst, failed=message, output=None)

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
        batch = pick_batch([m for m in messages if m["execution"] == inst["execution"]])
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
