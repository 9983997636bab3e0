"""Fixtures of the orchestrator replay tests: a fresh run of each orchestrator."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

# history.py and scenarios.py sit next to this file (also used by bench/orchestration_history.py).
sys.path.insert(0, str(Path(__file__).parent))

from history import OrchestrationRun  # noqa: E402
from scenarios import RUN_ID, batch_input, chunk_input  # noqa: E402

from orchestrators import batch_orchestrator, chunk_orchestrator  # noqa: E402


@pytest.fixture
def chunk_run():
    def make(**settings: Any) -> OrchestrationRun:
        return OrchestrationRun(chunk_orchestrator._function._func, chunk_input(**settings),
                                instance_id=f"{RUN_ID}:chunk-00001", name="chunk_orchestrator",
                                parent_instance_id=RUN_ID)
    return make


@pytest.fixture
def batch_run():
    def make(**settings: Any) -> OrchestrationRun:
        return OrchestrationRun(batch_orchestrator._function._func, batch_input(**settings),
                                instance_id=RUN_ID, name="batch_orchestrator")
    return make
