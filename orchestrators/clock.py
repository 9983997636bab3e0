"""Orchestration-clock helpers shared by the orchestrators (pure functions, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def iso(moment: datetime) -> str:
    """Format an orchestration timestamp for results and markers (UTC, ISO 8601)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def after(moment: datetime, seconds: float, deadline: datetime | None = None) -> datetime:
    """Return ``moment + seconds``, never later than ``deadline`` when one is given."""
    fire_at = moment + timedelta(seconds=seconds)
    return min(fire_at, deadline) if deadline is not None else fire_at


def parse_iso(text: str) -> datetime:
    """Read back a timestamp written by :func:`iso` (a deadline carried by continue-as-new)."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
