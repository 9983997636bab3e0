"""The recobatch function app: wiring only (the code lives in the blueprints).

- ``triggers.bp``: blob trigger on ``BATCH_INPUT_CONTAINER`` and the HTTP API (``/api/batches``)
- ``orchestrators.bp``: ``batch_orchestrator`` and ``chunk_orchestrator``
- ``activities.bp``: the activities of docs/design.md
"""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

import activities
import orchestrators
import triggers

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(activities.bp)
app.register_functions(orchestrators.bp)
app.register_functions(triggers.bp)
