"""The recobatch function app: wiring only (the code lives in the blueprints).

- ``triggers.bp``: blob trigger on ``BATCH_INPUT_CONTAINER`` and the HTTP API (``/api/batches``)
- ``orchestrators.bp``: ``batch_orchestrator`` and ``chunk_orchestrator``
- ``activities.bp``: the activities of docs/design.md

Telemetry is set up first, and only when asked for (``APPLICATIONINSIGHTS_CONNECTION_STRING``
or ``RECOBATCH_TRACE_FILE``; :func:`recobatch.telemetry.configure`).
"""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from recobatch import telemetry

telemetry.configure()

import activities  # noqa: E402 - after configure, so their first spans and logs are exported
import orchestrators  # noqa: E402
import triggers  # noqa: E402

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(activities.bp)
app.register_functions(orchestrators.bp)
app.register_functions(triggers.bp)
