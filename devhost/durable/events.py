"""History events and action kinds of the out-of-process Durable protocol (SDK 1.x)."""

from __future__ import annotations

from typing import Any

from devhost.durable.clock import iso

EXECUTION_STARTED = 0
TASK_SCHEDULED = 4
TASK_COMPLETED = 5
TASK_FAILED = 6
SUB_CREATED = 7
SUB_COMPLETED = 8
SUB_FAILED = 9
TIMER_CREATED = 10
TIMER_FIRED = 11
ORCHESTRATOR_STARTED = 12
ORCHESTRATOR_COMPLETED = 13
EVENT_RAISED = 15
CONTINUE_AS_NEW = 16

EVENT_NAMES = {
    0: "ExecutionStarted", 1: "ExecutionCompleted", 2: "ExecutionTerminated",
    4: "TaskScheduled", 5: "TaskCompleted", 6: "TaskFailed",
    7: "SubOrchestrationInstanceCreated", 8: "SubOrchestrationInstanceCompleted",
    9: "SubOrchestrationInstanceFailed", 10: "TimerCreated", 11: "TimerFired",
    12: "OrchestratorStarted", 13: "OrchestratorCompleted", 14: "EventSent",
    15: "EventRaised", 16: "ContinueAsNew",
}

# actionType values
CALL_ACTIVITY, CALL_ACTIVITY_RETRY, CALL_SUB, CALL_SUB_RETRY = 0, 1, 2, 3
CONTINUE_AS_NEW_ACTION, CREATE_TIMER, WAIT_EVENT = 4, 5, 6
CALL_ENTITY, CALL_HTTP, SIGNAL_ENTITY, WHEN_ANY, WHEN_ALL = 7, 8, 9, 11, 12

ACTION_NAMES = {
    0: "CallActivity", 1: "CallActivityWithRetry", 2: "CallSubOrchestrator",
    3: "CallSubOrchestratorWithRetry", 4: "ContinueAsNew", 5: "CreateTimer",
    6: "WaitForExternalEvent", 7: "CallEntity", 8: "CallHttp", 9: "SignalEntity",
    11: "WhenAny", 12: "WhenAll",
}


def event(event_type: int, ts: float, event_id: int = -1, **fields: Any) -> dict[str, Any]:
    """Build one history event (PascalCase keys, ``IsPlayed`` set when the episode is built)."""
    return {"EventType": event_type, "EventId": event_id, "Timestamp": iso(ts),
            "IsPlayed": False, **fields}


def flatten(actions: Any) -> list[dict[str, Any]]:
    """All atomic actions in order: inner lists concatenated, WhenAll/WhenAny expanded."""
    flat: list[dict[str, Any]] = []
    for item in actions or []:
        if isinstance(item, list):
            flat.extend(flatten(item))
        elif item.get("actionType") in (WHEN_ANY, WHEN_ALL):
            flat.extend(flatten(item.get("compoundActions", [])))
        else:
            flat.append(item)
    return flat


def action_key(action: dict[str, Any]) -> list[Any]:
    """What the determinism check compares: the kind and the name of an action."""
    kind = int(action["actionType"])
    name = action.get("functionName") or action.get("externalEventName") or ""
    return [kind, name]


def describe(key: list[Any] | None) -> str:
    if key is None:
        return "nothing"
    kind, name = key
    return f"{ACTION_NAMES.get(kind, kind)} '{name}'" if name else ACTION_NAMES.get(kind, str(kind))
