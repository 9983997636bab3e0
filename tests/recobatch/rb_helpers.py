"""In-memory prepare/merge plumbing for library tests (no storage)."""

from __future__ import annotations

import io
import json
from typing import Any

from recobatch.chunking import Chunk
from recobatch.jobspec import JobSettings
from recobatch.prepare import PrepareSummary, prepare

BASE_JOB = JobSettings(api_name="ItemRecommend", model_id="m1")


class _Keep(io.BytesIO):
    """A BytesIO whose content survives close()."""

    def close(self) -> None:
        self.kept = self.getvalue()
        super().close()


def run_prepare(data: bytes, jsonl: bool = False, max_job_bytes: int = 2_000_000,
                job: JobSettings = BASE_JOB, caller_job: dict[str, Any] | None = None
                ) -> tuple[PrepareSummary, list[Chunk], list[dict[str, Any]]]:
    """Prepare ``data``; return the summary, the chunks and the rejected lines."""
    chunks: list[Chunk] = []
    sinks: list[_Keep] = []

    def open_rejected() -> _Keep:
        chunks.clear()  # a second pass starts over
        sinks.append(_Keep())
        return sinks[-1]

    summary = prepare(lambda: io.BufferedReader(io.BytesIO(data)), jsonl, job, caller_job,
                      max_job_bytes, chunks.append, open_rejected)
    rejected = [json.loads(line) for line in sinks[-1].kept.splitlines() if line.strip()]
    return summary, chunks, rejected


def seed(requests: list[Any], **extra: Any) -> bytes:
    return json.dumps({"requests": requests, **extra}).encode()
