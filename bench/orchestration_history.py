"""How big do the Durable histories of a run get? Replays runs of N = 1, 10, 100 chunks.

Drives the real ``batch_orchestrator`` and, for each chunk, the real ``chunk_orchestrator``
through the replay driver of tests/orchestrators/history.py (simulated activity answers; each
job is polled 3 times: Running, Running, Succeeded). Prints the history events and bytes of the
run and of its chunks, per chunk, to show the cost per chunk stays constant: histories carry
names and ids, never payloads.

Then one chunk whose job takes ``--polls`` status checks (1,000 by default: at the 60-second
poll cap that is ~16.7 hours of Running; the chunk's deadline is set past it): the chunk
continues as new every few polls, so the longest history of any of its executions stays small
however long the job runs. Prints the executions, the longest execution history (events and
bytes) and the total events over all executions.

Usage: ``.venv/bin/python bench/orchestration_history.py [N ...] [--polls P]``
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "orchestrators")]

from history import OrchestrationRun, Scheduled, drive  # noqa: E402

from orchestrators import batch_orchestrator, chunk_orchestrator  # noqa: E402

RUN_ID = "rb-" + "ab" * 16
POLLS = [{"status": "Running", "percentComplete": 30, "message": ""},
         {"status": "Running", "percentComplete": 60, "message": ""},
         {"status": "Succeeded", "percentComplete": 100, "message": ""}]


def chunk_answer(item: Scheduled, run: OrchestrationRun) -> Any:
    """What each chunk activity answers in this simulation."""
    if item.name == "is_cancel_requested":
        return {"cancelled": False}
    if item.name == "submit_chunk":
        return {"accepted": True, "operationId": "0123456789abcdef" * 2, "batchId": "b"}
    if item.name == "check_operation":
        polled = sum(1 for a in run.actions if a.get("functionName") == "check_operation")
        return POLLS[min(polled, len(POLLS)) - 1]
    if item.name == "verify_output":
        return {"present": True, "valid": True, "results": 1000, "message": ""}
    raise AssertionError(item)


class Simulation:
    """One run of ``n`` chunks; chunk sub-orchestrations are driven when scheduled."""

    def __init__(self, n: int, window: int) -> None:
        self.n = n
        self.window = window
        self.chunks: list[OrchestrationRun] = []

    def answer(self, item: Scheduled, run: OrchestrationRun) -> Any:
        if item.name == "prepare_batch":
            return {"inputName": "big.jsonl", "etag": '"0x8DC0FFEE"', "size": self.n * 1_900_000,
                    "requests": self.n * 1000, "valid": self.n * 1000, "rejected": 0,
                    "chunks": [{"name": f"chunk-{i:05d}", "requests": 1000, "bytes": 1_900_000}
                               for i in range(1, self.n + 1)],
                    "job": {"apiName": "ItemRecommend", "modelId": "m" * 36,
                            "numberOfResults": 10, "includeMetadata": False,
                            "minimalScore": 0.0}}
        if item.name == "chunk_orchestrator":
            child = OrchestrationRun(chunk_orchestrator._function._func, item.input,
                                     instance_id=item.instance_id or "", start=run.now,
                                     name="chunk_orchestrator", parent_instance_id=RUN_ID)
            drive(child, chunk_answer)
            assert child.done, "chunk did not finish"
            self.chunks.append(child)
            return child.output
        if item.name == "merge_results":
            return {"results": {"name": "big.jsonl/results.json", "size": 1, "md5": "x" * 24},
                    "errors": {"name": "big.jsonl/errors.txt", "size": 0, "md5": "y" * 24},
                    "counts": {"results": self.n * 1000, "errors": 0}}
        if item.name == "write_marker":
            return {"name": "big.jsonl/_SUCCESS"}
        raise AssertionError(item)

    def run(self) -> OrchestrationRun:
        parent = OrchestrationRun(
            batch_orchestrator._function._func,
            {"container": "batch-input", "name": "big.jsonl", "etag": '"0x8DC0FFEE"',
             "size": self.n * 1_900_000, "job": {},
             "settings": {"maxConcurrentJobs": self.window, "pollInitialSeconds": 5,
                          "pollMaxSeconds": 60, "timeoutMinutes": 360,
                          "outputContainer": "batch-output"}},
            instance_id=RUN_ID, name="batch_orchestrator")
        drive(parent, self.answer)
        assert parent.done and parent.output["status"] == "Succeeded", parent.state
        return parent


def size(history: list[dict]) -> int:
    return len(json.dumps(history).encode())


def long_job(polls: int) -> None:
    """One chunk whose job reports Running ``polls - 1`` times, then Succeeded."""
    states = [POLLS[0]] * (polls - 1) + [POLLS[-1]]

    def answer(item: Scheduled, run: OrchestrationRun) -> Any:
        if item.name == "check_operation":
            return states.pop(0)
        return chunk_answer(item, run)

    chunk_input = {"instanceId": RUN_ID, "chunk": "chunk-00001", "job": {},
                   "settings": {"pollInitial": 5, "pollMax": 60,
                                "timeoutMinutes": polls * 60 // 60 + 60}}
    run = OrchestrationRun(chunk_orchestrator._function._func, chunk_input,
                           instance_id=f"{RUN_ID}:chunk-00001", name="chunk_orchestrator",
                           parent_instance_id=RUN_ID)
    started = time.perf_counter()
    drive(run, answer, max_episodes=polls * 10)
    elapsed = time.perf_counter() - started
    assert run.done and run.output["status"] == "Succeeded", run.state
    checks = sum(1 for a in run.all_actions if a.get("functionName") == "check_operation")
    print(f"\none chunk, job of {checks:,} polls: {run.executions} executions, longest history "
          f"{run.max_history} events, {run.episodes:,} episodes in all, replay {elapsed:.1f} s")


def main(argv: list[str]) -> int:
    polls = 1000
    if "--polls" in argv:
        at = argv.index("--polls")
        polls = int(argv[at + 1])
        argv = argv[:at] + argv[at + 2:]
    sizes = [int(a) for a in argv] or [1, 10, 100]
    print("N chunks | run events | run bytes | chunk events (each) | chunk bytes (each) | "
          "events/chunk | bytes/chunk | run episodes | replay s")
    for n in sizes:
        sim = Simulation(n, window=4)
        started = time.perf_counter()
        parent = sim.run()
        elapsed = time.perf_counter() - started
        chunk_events = [len(c.history) for c in sim.chunks]
        chunk_bytes = [size(c.history) for c in sim.chunks]
        total_events = len(parent.history) + sum(chunk_events)
        total_bytes = size(parent.history) + sum(chunk_bytes)
        print(f"{n:8d} | {len(parent.history):10d} | {size(parent.history):9,d} | "
              f"{min(chunk_events):5d}..{max(chunk_events):<5d}       | "
              f"{min(chunk_bytes):6,d}..{max(chunk_bytes):<6,d}    | "
              f"{total_events / n:12.1f} | {total_bytes / n:11,.0f} | "
              f"{parent.episodes:12d} | {elapsed:8.2f}")
    long_job(polls)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
