"""Faster history timestamps for the Durable SDK's replay (on by default, ``--exact-sdk`` off).

The SDK parses every history event's ``Timestamp`` with ``dateutil`` on every episode; with a
few hundred events that is most of an episode's time (≈0.7 ms an event, so a 100-step
sequence spends ~15 s replaying). devhost writes those timestamps itself in one fixed format,
which ``datetime.fromisoformat`` parses to the same instant, so the SDK's module-level
``dt_parse`` in ``HistoryEvent`` is swapped for it (anything else falls back to ``dateutil``).
Only the host process is affected; the app's code and the SDK's behaviour are unchanged.
"""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Any

# the module, not the class of the same name that the package re-exports
history_event = importlib.import_module("azure.durable_functions.models.history.HistoryEvent")

_dateutil_parse = history_event.dt_parse


def _parse(text: Any) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return _dateutil_parse(text)


def install() -> None:
    """Make ``HistoryEvent`` parse timestamps with ``datetime.fromisoformat``."""
    history_event.dt_parse = _parse
