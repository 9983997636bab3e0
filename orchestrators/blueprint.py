"""The one Durable blueprint both orchestrators register on (exported as ``orchestrators.bp``)."""

from __future__ import annotations

import azure.durable_functions as df

bp = df.Blueprint()

# The external event that asks a run, and each of its running chunks, to stop.
CANCEL_EVENT = "cancel"
