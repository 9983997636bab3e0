"""How the Durable extension replays an out-of-process orchestrator's actions, step by step.

Upstream: Azure/azure-functions-durable-extension,
``src/WebJobs.Extensions.DurableTask/Listener/OutOfProcOrchestrationShim.cs``
(``ReplayOOProcOrchestration``, ``ProcessAsyncActionsV2``, ``ProcessAsyncActionsV1``,
``InvokeAPIFromAction``). Each episode the extension walks **all** actions the SDK returned,
in order, against the DTFx context, which matches them to the history by sequence number (an
action already in the history is not scheduled again; a new one is). With schema V2/V3 it
*awaits each top-level action before invoking the next*: a ``WhenAny``/``WhenAll`` invokes all
its compound children, then waits for any/all of them. So the walk stops at the first
top-level action that has not completed, and whatever comes after it is not scheduled in this
episode (and the orchestration cannot complete or fail until it is).

The SDK leaves the children that were scheduled by an earlier ``yield`` out of a compound
action (``CompoundTask.__init__`` in the SDK's ``models/Task.py``), so a ``task_any`` over old and
new tasks reaches the extension as a ``WhenAny`` of the new ones only: the extension waits for
those, whatever the SDK saw complete first.

With the Original schema (V1) each inner list is one ``Task.WhenAny`` of its actions (the
fire-and-forget ones left out).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

CALL_ACTIVITY, CALL_ACTIVITY_RETRY, CALL_SUB, CALL_SUB_RETRY = 0, 1, 2, 3
CONTINUE_AS_NEW, CREATE_TIMER, WAIT_EVENT = 4, 5, 6
SIGNAL_ENTITY, SCHEDULED_SIGNAL_ENTITY, WHEN_ANY, WHEN_ALL = 9, 10, 11, 12
_FIRE_AND_FORGET = (CONTINUE_AS_NEW, SIGNAL_ENTITY, SCHEDULED_SIGNAL_ENTITY)

# done(flat_index, action) -> has that atomic action completed (given the whole history)?
AtomicDone = Callable[[int, dict[str, Any]], bool]


def walk(actions: Any, schema: int, done: AtomicDone) -> tuple[int, bool]:
    """Walk the actions like the extension does.

    Parameters
    ----------
    actions : list
        The ``actions`` the SDK returned (a list of inner lists).
    schema : int
        The ``schemaVersion`` the SDK returned (0 when absent: the Original schema).
    done : callable
        ``done(i, action)``: whether the ``i``-th atomic action (flattened, in order) has
        completed. Only called for actions the walk reaches.

    Returns
    -------
    (int, bool)
        How many atomic actions (flattened, in order) the extension has invoked, so has
        scheduled, once this episode ends; and whether the walk stopped at an action that has
        not completed (the orchestration then cannot complete in this episode).
    """
    counter = [0]

    def invoke(action: dict[str, Any]) -> bool:
        kind = int(action["actionType"])
        if kind in (WHEN_ANY, WHEN_ALL):
            results = [invoke(child) for child in action.get("compoundActions") or []]
            return any(results) if kind == WHEN_ANY else all(results)
        index = counter[0]
        counter[0] += 1
        if kind in _FIRE_AND_FORGET:
            return True
        if kind == CREATE_TIMER and action.get("isCanceled"):
            return True  # the extension cancels its token: the await ends at once
        return done(index, action)

    groups = actions or []
    if schema >= 1:
        if len(groups) > 1:
            raise ValueError(f"with schema V{schema + 1} the actions must be one inner list, "
                             f"got {len(groups)}")
        for action in groups[0] if groups else []:
            if not invoke(action):
                return counter[0], True
        return counter[0], False
    for group in groups:  # Original schema: one Task.WhenAny per inner list
        results = [(invoke(a), int(a["actionType"])) for a in group]
        awaited = [ok for ok, kind in results if kind not in _FIRE_AND_FORGET]
        if awaited and not any(awaited):
            return counter[0], True
    return counter[0], False


def wait_index(flat: list[dict[str, Any]], index: int) -> int:
    """1-based position of the ``index``-th action among the waits for the same event name.

    The extension hands raised events of one name to its waiters first come, first served, and
    keeps an event nobody waits for yet until a wait comes (``DurableOrchestrationContext``
    in the extension), so the n-th wait completes once n events of that name have arrived.
    """
    name = flat[index].get("externalEventName")
    return sum(1 for a in flat[:index + 1]
               if int(a["actionType"]) == WAIT_EVENT and a.get("externalEventName") == name)


# What the extension adds to the context it hands the SDK (Azure Storage provider), from
# ``OrchestrationTriggerAttributeBindingProvider.OrchestrationContextToString`` (upper schema V2
# for SDKs 1.1.0-1.1.3, ``upperSchemaVersionNew`` V3) and ``AzureStorageDurabilityProvider``
# (long timers in intervals of 3 days; the longest single timer is 6 days).
HOST_CONTEXT: dict[str, Any] = {
    "upperSchemaVersion": 1, "upperSchemaVersionNew": 2,
    "longRunningTimerIntervalDuration": "3.00:00:00", "maximumShortTimerDuration": "6.00:00:00",
}

# The extension's limit on the serialized custom status (``SetCustomStatus`` in
# ``ContextImplementations/DurableOrchestrationContext.cs`` with ``MessagePayloadDataConverter.
# Serialize(value, maxSizeInKB)``): counted in UTF-16 bytes, whole KB rounded down.
MAX_CUSTOM_STATUS_KB = 16


def custom_status_error(custom: Any) -> str | None:
    """The message the extension throws for an oversized custom status, or None when it fits.

    The exception escapes the out-of-process replay, so the orchestration fails with
    ``Orchestrator function '<name>' failed: <this message>`` (``TaskOrchestrationShim``).
    """
    if custom is None:
        return None
    text = json.dumps(custom, separators=(",", ":"), ensure_ascii=False)
    size_kb = int(len(text.encode("utf-16-le")) / 1024.0)
    if size_kb <= MAX_CUSTOM_STATUS_KB:
        return None
    return (f"The UTF-16 size of the JSON-serialized payload must not exceed "
            f"{MAX_CUSTOM_STATUS_KB:,} KB. The current payload size is {size_kb:,} KB.")


_COMPLETIONS = {5: "TaskScheduledId", 6: "TaskScheduledId", 8: "TaskScheduledId",
                9: "TaskScheduledId", 11: "TimerId"}
_SUCCESSES = (5, 8)


class Recorded:
    """The atomic actions an instance has scheduled, with their sequence numbers.

    ``keys`` (kind and name, for the determinism check) and ``seqs`` (None for waits and
    continue-as-new) follow the flattened action order. A ``...WithRetry`` action is one entry;
    the host's later attempts and retry timers are ``aliases`` of its first sequence number,
    and ``finished`` holds retried actions whose last attempt failed and whose last timer fired.
    """

    def __init__(self, keys: list[list[Any]], seqs: list[int | None],
                 aliases: dict[int, int] | None = None, finished: set[int] | None = None,
                 legacy: bool = False) -> None:
        self.keys = keys
        self.seqs = seqs
        self.aliases = aliases or {}
        self.finished = finished or set()
        self.legacy = legacy

    @classmethod
    def loads(cls, text: str | None) -> Recorded:
        data = json.loads(text or "[]")
        if isinstance(data, list):  # written before devhost walked actions: keys only
            return cls(data, [None] * len(data), legacy=True)
        return cls(data["keys"], data["seqs"],
                   {int(k): int(v) for k, v in data.get("aliases", {}).items()},
                   {int(v) for v in data.get("finished", [])}, bool(data.get("legacy")))

    def dumps(self) -> str:
        return json.dumps({"keys": self.keys, "seqs": self.seqs, "aliases": self.aliases,
                           "finished": sorted(self.finished), "legacy": self.legacy})

    def add(self, action: dict[str, Any], seq: int | None) -> None:
        kind = int(action["actionType"])
        self.keys.append([kind, action.get("functionName") or action.get("externalEventName")
                          or ""])
        self.seqs.append(seq)

    def alias(self, seq: int, origin: int | None) -> None:
        if origin is not None:
            self.aliases[seq] = origin

    def finish(self, origin: int | None) -> None:
        if origin is not None:
            self.finished.add(origin)

    def completion(self, flat: list[dict[str, Any]], history: list[dict[str, Any]]) -> AtomicDone:
        """``done(i, action)`` for :func:`walk`, from the whole history of this episode."""
        retried = {seq for key, seq in zip(self.keys, self.seqs, strict=False)
                   if key[0] in (CALL_ACTIVITY_RETRY, CALL_SUB_RETRY) and seq is not None}
        completed = set(self.finished)
        raised: dict[str, int] = {}
        for event in history:
            kind = event.get("EventType")
            if kind == 15:
                name = str(event.get("Name"))
                raised[name] = raised.get(name, 0) + 1
                continue
            field = _COMPLETIONS.get(kind)
            if field is None or event.get(field) is None:
                continue
            seq = int(event[field])
            origin = self.aliases.get(seq, seq)
            if origin in retried:
                if kind in _SUCCESSES:
                    completed.add(origin)
            else:
                completed.add(seq)

        def done(index: int, action: dict[str, Any]) -> bool:
            if int(action["actionType"]) == WAIT_EVENT:
                name = str(action.get("externalEventName"))
                return raised.get(name, 0) >= wait_index(flat, index)
            if index >= len(self.seqs):
                return False  # scheduled in this very episode
            seq = self.seqs[index]
            if seq is None:
                return self.legacy  # an instance recorded before the walk: never block it
            return seq in completed

        return done
