"""Reading activity and sub-orchestration failures inside orchestrators."""

from __future__ import annotations

from recobatch import errors


def reason(exc: BaseException | str | None) -> tuple[str, str]:
    """Return ``(code, sentence)`` of a failure the Durable SDK handed to an orchestrator.

    The SDK's exception text is ``"<Reason> \\n <Details>"`` where Details is the activity's
    traceback: only the first line is a sentence fit for markers and results.
    """
    sentence = errors.message_of(exc).split("\n", 1)[0].strip()
    return errors.code_of(exc), sentence
