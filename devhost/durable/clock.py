"""The orchestration clock: wall time, optionally running ``scale`` times faster.

With ``--timer-scale 60`` a one-hour durable timer fires after one wall minute. Scaling only the
timer delays is not enough: the orchestrator reads the time from ``OrchestratorStarted`` and a
monitor loop that computes a deadline from ``context.current_utc_datetime`` would never reach
it. So every timestamp the durable host hands out comes from this virtual clock, which never
goes backwards, also across restarts: it starts from the latest time it handed out, which is
the clock stored by the last episode, an instance's timestamps, or the timestamp of an event
(a fired timer, an activity completion) still waiting in an inbox.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from devhost.durable.store import Store

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class Clock:
    """Virtual time: ``anchor + (wall - wall_anchor) * scale`` (epoch seconds)."""

    def __init__(self, store: Store, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError("--timer-scale must be > 0")
        self.scale = scale
        self._wall_anchor = time.time()
        self._anchor = max(self._wall_anchor, _latest_handed_out(store))

    def now(self) -> float:
        return self._anchor + (time.time() - self._wall_anchor) * self.scale

    def wall_delay(self, due: float) -> float:
        """Wall seconds until the virtual time ``due``."""
        return max(0.0, (due - self.now()) / self.scale)


def _latest_handed_out(store: Store) -> float:
    """The latest orchestration time a previous run recorded anywhere in the store."""
    latest = float(store.get_meta("clock", "0") or 0)
    row = store.query("SELECT MAX(MAX(created), MAX(updated)) AS t FROM instances")[0]
    latest = max(latest, float(row["t"] or 0))
    for event in store.query("SELECT event FROM inbox"):
        stamp = json.loads(event["event"]).get("Timestamp")
        if stamp:
            latest = max(latest, parse_iso(stamp))
    return latest


def iso(ts: float) -> str:
    """Format epoch seconds the way the Durable SDK parses history timestamps."""
    return datetime.fromtimestamp(ts, UTC).strftime(TIMESTAMP_FORMAT)


def parse_iso(text: str) -> float:
    """Parse an ISO-8601 timestamp (``fireAt`` of a timer action) into epoch seconds."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()
