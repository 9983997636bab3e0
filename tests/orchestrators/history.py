"""Drive a real orchestrator through episodes the way the Durable host does.

An :class:`OrchestrationRun` keeps the history of one instance. Each :meth:`~OrchestrationRun.
episode` appends ``OrchestratorStarted`` (its timestamp is the orchestration clock), the
completions queued since the last episode, calls the orchestrator's handle with the context
JSON, records the new actions as scheduled events (sequence numbers count up from 0 across
activities, sub-orchestrations and timers) and appends ``OrchestratorCompleted``. Tests then
complete, fail, fire or raise what they want and run the next episode.

The event shapes follow docs/design.md and /work/shared/reference/durable-host-protocol.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any

from devhost.durable.replay import HOST_CONTEXT, wait_index, walk

TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
OUT_OF_PROC_LABEL = "$OutOfProcData$:"
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


class EventType(IntEnum):
    """History event types (``EventType`` of the host's JSON)."""

    EXECUTION_STARTED = 0
    TASK_SCHEDULED = 4
    TASK_COMPLETED = 5
    TASK_FAILED = 6
    SUB_ORCHESTRATION_CREATED = 7
    SUB_ORCHESTRATION_COMPLETED = 8
    SUB_ORCHESTRATION_FAILED = 9
    TIMER_CREATED = 10
    TIMER_FIRED = 11
    ORCHESTRATOR_STARTED = 12
    ORCHESTRATOR_COMPLETED = 13
    EVENT_RAISED = 15


class ActionType(IntEnum):
    """Action types (``actionType`` of the orchestrator's answer)."""

    CALL_ACTIVITY = 0
    CALL_ACTIVITY_WITH_RETRY = 1
    CALL_SUB_ORCHESTRATOR = 2
    CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
    CONTINUE_AS_NEW = 4
    CREATE_TIMER = 5
    WAIT_FOR_EXTERNAL_EVENT = 6
    WHEN_ANY = 11
    WHEN_ALL = 12


def ts(moment: datetime) -> str:
    """Format a moment as the host does."""
    return moment.astimezone(UTC).strftime(TS_FORMAT)


def parse_ts(text: str) -> datetime:
    """Parse a host timestamp (``fireAt`` of a timer action)."""
    return datetime.strptime(text, TS_FORMAT).replace(tzinfo=UTC)


def flatten(actions: list) -> list[dict]:
    """Flatten the orchestrator's action lists and compound (WhenAny/WhenAll) actions."""
    out: list[dict] = []
    for item in actions:
        if isinstance(item, list):
            out.extend(flatten(item))
        elif item.get("actionType") in (ActionType.WHEN_ANY, ActionType.WHEN_ALL):
            out.extend(flatten(item.get("compoundActions", [])))
        else:
            out.append(item)
    return out


@dataclass
class Scheduled:
    """Something the orchestrator scheduled that has not completed yet."""

    seq: int
    kind: str  # "activity" | "suborchestration" | "timer"
    name: str = ""
    input: Any = None
    instance_id: str | None = None
    fire_at: datetime | None = None
    action: dict = field(default_factory=dict)


class OrchestrationRun:
    """One orchestration instance and its growing history.

    Parameters
    ----------
    handle : callable
        The orchestrator's handle (``function_builder._function._func``): JSON in, JSON out.
    input_ : Any
        The instance input (JSON-able).
    instance_id : str
        The instance id the context reports.
    start : datetime
        The orchestration clock at the first episode.
    name : str
        The orchestrator function name recorded in ``ExecutionStarted``.
    """

    def __init__(self, handle: Callable[[str], str], input_: Any, *,
                 instance_id: str = "rb-0123456789abcdef0123456789abcdef",
                 start: datetime = T0, name: str = "orchestrator",
                 parent_instance_id: str | None = None) -> None:
        self.handle = handle
        self.input = input_
        self.instance_id = instance_id
        self.parent_instance_id = parent_instance_id
        self.now = start
        self.history: list[dict] = []
        self.actions: list[dict] = []  # every flattened action seen, in order
        self.new_actions: list[dict] = []  # the actions added by the last episode
        self.pending: dict[int, Scheduled] = {}
        self.seqs: list[int | None] = []  # sequence number of each scheduled action
        self.blocked = False  # the host still awaits an action (see devhost/durable/replay.py)
        self.state: dict = {}
        self.episodes = 0
        self.name = name
        self.executions = 1  # continue-as-new starts the next one with a fresh history
        self.max_history = 0  # the longest history any execution reached
        self.all_actions: list[dict] = []  # the scheduled actions of every execution
        self._seq = 0
        self._inbox: list[dict] = [self._event(EventType.EXECUTION_STARTED, Name=name,
                                               Input=json.dumps(input_), Version="")]

    # -- the episode ----------------------------------------------------------------------
    def _event(self, kind: EventType, event_id: int = -1, **fields: Any) -> dict:
        return {"EventType": int(kind), "EventId": event_id, "Timestamp": ts(self.now),
                "IsPlayed": False, **fields}

    def episode(self) -> dict:
        """Deliver the queued events, run the orchestrator once, record its new actions."""
        for event in self.history:
            event["IsPlayed"] = True
        self.history.append(self._event(EventType.ORCHESTRATOR_STARTED))
        self.history.extend(self._inbox)
        self._inbox = []
        context = {"history": self.history, "instanceId": self.instance_id,
                   "parentInstanceId": self.parent_instance_id, "isReplaying": False,
                   "input": json.dumps(self.input), **HOST_CONTEXT}
        try:
            raw = self.handle(json.dumps(context))
        except Exception as exc:
            # An orchestrator that raised: the SDK puts its state after this label (the host
            # records the actions and marks the instance Failed).
            text, label, state = str(exc).partition(OUT_OF_PROC_LABEL)
            if not label:
                raise
            raw = state
        self.state = json.loads(raw)
        self.episodes += 1
        flat = flatten(self.state.get("actions", []))
        # The extension awaits each action in turn: what comes after one that has not
        # completed is not scheduled yet (devhost/durable/replay.py names the upstream source).
        invoked, self.blocked = walk(self.state.get("actions", []),
                                     int(self.state.get("schemaVersion") or 0),
                                     self._completed(flat))
        self.new_actions = flat[len(self.actions):invoked]
        self.actions = flat[:max(invoked, len(self.actions))]
        for action in self.new_actions:
            self._record(action)
        self.all_actions.extend(self.new_actions)
        self.history.append(self._event(EventType.ORCHESTRATOR_COMPLETED))
        self.max_history = max(self.max_history, len(self.history))
        again = [a for a in self.new_actions if a["actionType"] == ActionType.CONTINUE_AS_NEW]
        if again and self.state.get("isDone") and not self.blocked:
            self._continue_as_new(again[0].get("input"))
        return self.state

    def _continue_as_new(self, input_text: str | None) -> None:
        """Start the next execution: same instance, fresh history; raised events carry over."""
        self.executions += 1
        self.input = json.loads(input_text or "null")
        carried = [e for e in self._inbox if e["EventType"] == EventType.EVENT_RAISED]
        self.history, self.actions, self.new_actions, self.seqs = [], [], [], []
        self.pending, self.state, self._seq = {}, {}, 0
        self._inbox = [self._event(EventType.EXECUTION_STARTED, Name=self.name,
                                   Input=json.dumps(self.input), Version=""), *carried]

    def _completed(self, flat: list[dict]) -> Callable[[int, dict], bool]:
        raised: dict[str, int] = {}
        for event in self.history:
            if event["EventType"] == EventType.EVENT_RAISED:
                raised[event["Name"]] = raised.get(event["Name"], 0) + 1

        def done(index: int, action: dict) -> bool:
            if action["actionType"] == ActionType.WAIT_FOR_EXTERNAL_EVENT:
                return raised.get(action["externalEventName"], 0) >= wait_index(flat, index)
            if index >= len(self.seqs):
                return False
            seq = self.seqs[index]
            return seq is not None and seq not in self.pending

        return done

    def _record(self, action: dict) -> None:
        kind = action["actionType"]
        if kind in (ActionType.WAIT_FOR_EXTERNAL_EVENT, ActionType.CONTINUE_AS_NEW):
            self.seqs.append(None)
            return  # waiting is not a scheduling event and takes no sequence number
        seq = self._seq
        self.seqs.append(seq)
        self._seq += 1
        if kind in (ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY):
            item = Scheduled(seq, "activity", action["functionName"],
                             json.loads(action.get("input") or "null"), action=action)
            self.history.append(self._event(EventType.TASK_SCHEDULED, seq,
                                            Name=item.name, Input=action.get("input")))
        elif kind in (ActionType.CALL_SUB_ORCHESTRATOR,
                      ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY):
            item = Scheduled(seq, "suborchestration", action["functionName"],
                             json.loads(action.get("input") or "null"),
                             instance_id=action.get("instanceId"), action=action)
            self.history.append(self._event(EventType.SUB_ORCHESTRATION_CREATED, seq,
                                            Name=item.name, InstanceId=item.instance_id,
                                            Input=action.get("input")))
        elif kind == ActionType.CREATE_TIMER:
            item = Scheduled(seq, "timer", fire_at=parse_ts(action["fireAt"]), action=action)
            self.history.append(self._event(EventType.TIMER_CREATED, seq,
                                            FireAt=action["fireAt"]))
        else:
            raise AssertionError(f"unexpected action {action}")
        self.pending[seq] = item

    # -- what arrives between episodes ----------------------------------------------------
    def complete(self, item: Scheduled, result: Any = None) -> None:
        """Queue the successful completion of an activity or sub-orchestration."""
        self.pending.pop(item.seq)
        kind = (EventType.TASK_COMPLETED if item.kind == "activity"
                else EventType.SUB_ORCHESTRATION_COMPLETED)
        self._inbox.append(self._event(kind, TaskScheduledId=item.seq, Result=json.dumps(result)))

    def fail(self, item: Scheduled, reason: str,
             details: str = "Traceback (simulated)") -> None:
        """Queue the failure of an activity or sub-orchestration (``Reason`` = message)."""
        self.pending.pop(item.seq)
        kind = (EventType.TASK_FAILED if item.kind == "activity"
                else EventType.SUB_ORCHESTRATION_FAILED)
        self._inbox.append(self._event(kind, TaskScheduledId=item.seq, Reason=reason,
                                       Details=details))

    def fire(self, timer: Scheduled) -> None:
        """Advance the clock to the timer and queue ``TimerFired``."""
        self.pending.pop(timer.seq)
        assert timer.fire_at is not None
        self.now = max(self.now, timer.fire_at)
        self._inbox.append(self._event(EventType.TIMER_FIRED, TimerId=timer.seq,
                                       FireAt=ts(timer.fire_at)))

    def raise_event(self, name: str, value: Any = None) -> None:
        """Queue an external event."""
        self._inbox.append(self._event(EventType.EVENT_RAISED, Name=name,
                                       Input=json.dumps(value)))

    def advance(self, seconds: float) -> None:
        """Move the orchestration clock (what the next ``OrchestratorStarted`` says)."""
        self.now += timedelta(seconds=seconds)

    # -- reading the result ---------------------------------------------------------------
    @property
    def queued(self) -> int:
        """How many events wait for the next episode."""
        return len(self._inbox)

    @property
    def done(self) -> bool:
        """Done as the host sees it: the SDK says so and the host's replay is not stuck."""
        return bool(self.state.get("isDone")) and not self.blocked

    @property
    def output(self) -> Any:
        return self.state.get("output")

    @property
    def custom_status(self) -> Any:
        return self.state.get("customStatus")

    def waiting(self, kind: str | None = None, name: str | None = None) -> list[Scheduled]:
        """Pending items, oldest first, optionally of one kind or function name."""
        return [item for item in sorted(self.pending.values(), key=lambda i: i.seq)
                if (kind is None or item.kind == kind) and (name is None or item.name == name)]

    def only(self, kind: str | None = None, name: str | None = None) -> Scheduled:
        """The single pending item of that kind/name (fails the test if not exactly one)."""
        items = self.waiting(kind, name)
        assert len(items) == 1, f"expected one pending {kind or ''} {name or ''}: {items}"
        return items[0]

    def names(self, actions: list[dict] | None = None) -> list[str]:
        """Readable names of actions: function names, ``timer``, ``wait:<event>``."""
        out = []
        for action in self.actions if actions is None else actions:
            kind = action["actionType"]
            if kind == ActionType.CREATE_TIMER:
                out.append("timer")
            elif kind == ActionType.WAIT_FOR_EXTERNAL_EVENT:
                out.append("wait:" + action["externalEventName"])
            elif kind == ActionType.CONTINUE_AS_NEW:
                out.append("continue_as_new")
            else:
                out.append(action["functionName"])
        return out


Responder = Callable[[Scheduled, OrchestrationRun], Any]
FAIL = object()  # a responder returns ``(FAIL, "Code: sentence"[, details])`` to fail an item
PENDING = object()  # a responder returns this to leave an item running


def drive(run: OrchestrationRun, respond: Responder, *, max_episodes: int = 10_000,
          between: Callable[[OrchestrationRun], None] | None = None) -> OrchestrationRun:
    """Run episodes until the orchestration is done or nothing more can happen.

    Each round ``respond(item, run)`` is asked about every pending activity and
    sub-orchestration: it returns the result, ``(FAIL, message)`` to fail it, or ``PENDING`` to
    leave it running. ``between(run)`` may then queue external events. When nothing was queued,
    the earliest timer fires (the clock jumps to it); with no timer either, the run is stuck
    and ``drive`` returns.
    """
    run.episode()
    while not run.done and run.episodes < max_episodes:
        for item in run.waiting():
            if item.kind == "timer":
                continue
            outcome = respond(item, run)
            if outcome is PENDING:
                continue
            if isinstance(outcome, tuple) and len(outcome) in (2, 3) and outcome[0] is FAIL:
                run.fail(item, *outcome[1:])
            else:
                run.complete(item, outcome)
        if between is not None:
            between(run)
        if not run.queued:
            timers = sorted(run.waiting("timer"), key=lambda t: (t.fire_at, t.seq))
            if not timers:
                break
            run.fire(timers[0])
        run.episode()
    return run
