"""The one Durable blueprint every activity registers on (exported as ``activities.bp``).

Its ``activity_trigger`` puts each activity function in a span (``activity <name>``, with the
run's ids from the payload; :func:`recobatch.telemetry.traced_activity`) before registering it,
so every activity is traced from this one place. The registered function keeps the activity's
name and signature, which the worker's indexing reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import azure.durable_functions as df

from recobatch import telemetry


class TracedBlueprint(df.Blueprint):
    """A ``df.Blueprint`` whose activities run in a telemetry span."""

    def activity_trigger(self, input_name: str, activity: str | None = None) -> Callable:
        register = super().activity_trigger(input_name=input_name, activity=activity)

        def decorator(fn: Callable[..., Any]) -> Any:
            name = activity or getattr(fn, "__name__", "activity")
            return register(telemetry.traced_activity(fn, name, input_name))

        return decorator


bp = TracedBlueprint()
