"""The orchestrators: ``batch_orchestrator`` (one run) and ``chunk_orchestrator`` (one job).

Both register on :data:`bp`, which ``function_app.py`` registers on the app.
"""

from __future__ import annotations

from orchestrators.batch_orchestrator import batch_orchestrator
from orchestrators.blueprint import CANCEL_EVENT, bp
from orchestrators.chunk_orchestrator import chunk_orchestrator

__all__ = ["bp", "batch_orchestrator", "chunk_orchestrator", "CANCEL_EVENT"]
