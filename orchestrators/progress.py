"""What a run shows while it works (custom status) and what its marker says when it ends.

Pure helpers for ``batch_orchestrator``: no I/O, no clock of their own. The custom status is
``{phase, requests, chunks: {total, running, succeeded, failed}, runningChunks, output}``; the
HTTP cancel reads ``runningChunks`` (sub-orchestration ids) to raise ``cancel`` to each.

The host refuses a custom status over 16 KB of UTF-16 (the orchestration fails), so
``runningChunks`` lists at most :data:`MAX_LISTED_RUNNING` ids, the oldest chunks first: 100 ids
of 47 characters, a 1,024-character blob name in ``output`` and the rest stay under 13 KB at
any window size. ``chunks.running`` is always the full count; a chunk left off the list sees
the run's cancel flag at its next poll or submit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from recobatch import errors

# Most sub-orchestration ids the custom status lists (see the module docstring).
MAX_LISTED_RUNNING = 100

# When chunks fail for different reasons, the run's code is the first of these that occurs.
_CODE_PRIORITY = (errors.CANCELLED, errors.UPSTREAM_REJECTED, errors.UPSTREAM_JOB_FAILED,
                  errors.OUTPUT_INVALID, errors.JOB_TIMED_OUT, errors.UPSTREAM_UNAVAILABLE)


@dataclass
class Progress:
    """The run's progress, turned into the custom status by :meth:`status`."""

    output: str
    phase: str = "preparing"
    requests: int = 0
    total: int = 0
    running: dict[str, str] = field(default_factory=dict)  # chunk name -> sub-orchestration id
    results: dict[str, dict] = field(default_factory=dict)  # chunk name -> chunk result

    @property
    def succeeded(self) -> int:
        return sum(1 for r in self.results.values() if r["status"] == "Succeeded")

    @property
    def failed(self) -> int:
        return len(self.results) - self.succeeded

    def status(self) -> dict:
        return {"phase": self.phase, "requests": self.requests,
                "chunks": {"total": self.total, "running": len(self.running),
                           "succeeded": self.succeeded, "failed": self.failed},
                "runningChunks": sorted(self.running.values())[:MAX_LISTED_RUNNING],
                "output": self.output}


def run_code(results: list[dict], cancelled: bool) -> str | None:
    """The run's error code from its chunk results, or None when every chunk succeeded
    (also when a cancel came too late to stop any of them: the results are complete)."""
    codes = [r.get("code") or errors.UPSTREAM_JOB_FAILED
             for r in results if r["status"] != "Succeeded"]
    if not codes:
        return None
    if cancelled:
        return errors.CANCELLED
    return next((c for c in _CODE_PRIORITY if c in codes), codes[0])


def failing_chunks(results: list[dict]) -> list[dict]:
    """The failing chunks with their upstream messages (ids and text only, never payloads)."""
    keep = ("chunk", "status", "code", "operationId", "message")
    return [{k: r.get(k) for k in keep} for r in results if r["status"] != "Succeeded"]


def run_message(code: str, failing: list[dict], total: int) -> str:
    """One plain sentence for the marker."""
    if code == errors.CANCELLED:
        return f"the run was cancelled; {total - len(failing)} of {total} chunks had finished."
    first = failing[0] if failing else {}
    detail = f" First: {first['chunk']}: {first.get('message') or first['status']}" if first \
        else ""
    return f"{len(failing)} of {total} chunks did not succeed ({code}).{detail}"
