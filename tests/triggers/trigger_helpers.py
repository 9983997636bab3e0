"""Helpers for trigger tests that race the HTTP handlers against a run on devhost."""

from __future__ import annotations

from collections.abc import Callable

import azure.durable_functions as df


class StatusPause:
    """A durable client whose first ``get_status`` answer is handed back only after ``pause``
    ran (the run moves on, or finishes, in between)."""

    def __init__(self, client: df.DurableOrchestrationClient, pause: Callable[[], None]) -> None:
        self._client, self._pause, self._calls = client, pause, 0

    async def get_status(self, instance_id: str):
        status = await self._client.get_status(instance_id)
        self._calls += 1
        if self._calls == 1:
            self._pause()
        return status

    def __getattr__(self, name: str):
        return getattr(self._client, name)
