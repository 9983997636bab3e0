"""Fault injection for recoservice: make the upstream misbehave on purpose, for tests.

The admin routes exist only when the service runs with ``--faults`` (off by default), and
need an admin key (``Recoservice-Admin-Key``, from ``--admin-key-file`` or
``RECOSERVICE_ADMIN_KEYS``) besides a subscription key. Rules are installed with
``PUT {base}/admin/faults`` (body ``{"rules": [...]}``, replaces all rules), listed with
``GET`` (what is left, counts decremented), cleared with ``DELETE``. ``recoservice serve
--faults FILE`` loads the same JSON at start (``FaultBook.from_file``). Rules fire only for
authenticated requests: ``ApiGuard`` answers 401 before any route (and so any rule) runs.

A rule is a JSON object::

    {"target": "submit" | "status" | "job", "action": ..., "count": N}

``count`` is how many times the rule fires (default 1; ``-1`` fires forever). Rules are tried in
order; the first rule for the target fires and, when its count reaches 0, is removed.

target ``submit`` (``POST /batchjobs``, before validation)
    ``{"action": "status", "status": 503 | 429 | 500, "retryAfter": seconds}`` answers that
    status; ``retryAfter`` (optional) becomes the ``Retry-After`` header.
target ``status`` (``GET /operations/{id}``)
    ``{"action": "status", "status": 500, "retryAfter": seconds}`` answers that status;
    ``{"action": "hang", "seconds": 30}`` waits, then answers normally (at most
    ``MAX_HANG_SECONDS``, 60 s: a longer hang is refused with 400).
target ``job`` (consumed when a batch job starts running)
    ``{"action": "fail", "message": "..."}`` the operation ends ``Failed`` with the message;
    ``{"action": "stuck"}`` stays ``Running`` until cancelled;
    ``{"action": "skipOutput"}`` ends ``Succeeded`` without writing the output blob;
    ``{"action": "invalidOutput"}`` ends ``Succeeded`` with a non-JSON output blob.

Example::

    {"rules": [{"target": "submit", "action": "status", "status": 429, "retryAfter": 2},
               {"target": "job", "action": "fail", "message": "disk full", "count": 2}]}
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request

from recoservice.errors import ApiError

TARGETS = ("submit", "status", "job")
ACTIONS = {
    "submit": ("status",),
    "status": ("status", "hang"),
    "job": ("fail", "stuck", "skipOutput", "invalidOutput"),
}
SUBMIT_STATUSES = (429, 500, 503)
# Longest "hang": enough to outlast any client timeout under test, short enough that a
# forgotten rule cannot tie up a connection for long.
MAX_HANG_SECONDS = 60
# Error codes recoservice answers for each injected status (body {"error": {code, message}}).
STATUS_CODES = {
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


@dataclass
class FaultRule:
    """One validated fault rule; ``count`` is what is left (-1: forever)."""

    target: str
    action: str
    count: int = 1
    status: int | None = None
    retry_after: int | None = None
    seconds: float = 0.0
    message: str = "injected fault"

    @classmethod
    def parse(cls, raw: Any, position: int) -> FaultRule:
        """Validate one rule from JSON; raise ``ValueError`` naming what is wrong."""
        where = f"rules[{position}]"
        if not isinstance(raw, dict):
            raise ValueError(f"{where} must be an object")
        target = raw.get("target")
        if target not in TARGETS:
            raise ValueError(f"{where}.target must be one of {', '.join(TARGETS)}")
        action = raw.get("action")
        if action not in ACTIONS[target]:
            raise ValueError(
                f"{where}.action must be one of {', '.join(ACTIONS[target])} for target {target}"
            )
        count = raw.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or (count < 1 and count != -1):
            raise ValueError(f"{where}.count must be a positive integer or -1 (forever)")
        rule = cls(target=target, action=action, count=count)
        if action == "status":
            status = raw.get("status")
            allowed = SUBMIT_STATUSES if target == "submit" else tuple(STATUS_CODES)
            if status not in allowed:
                raise ValueError(f"{where}.status must be one of {', '.join(map(str, allowed))}")
            rule.status = int(status)
            retry_after = raw.get("retryAfter")
            if retry_after is not None:
                if not isinstance(retry_after, int) or isinstance(retry_after, bool) \
                        or retry_after < 0:
                    raise ValueError(f"{where}.retryAfter must be a non-negative integer")
                rule.retry_after = retry_after
        elif action == "hang":
            seconds = raw.get("seconds", 30)
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) \
                    or not 0 <= seconds <= MAX_HANG_SECONDS:
                raise ValueError(f"{where}.seconds must be a number from 0 to "
                                 f"{MAX_HANG_SECONDS}")
            rule.seconds = float(seconds)
        elif action == "fail":
            message = raw.get("message", "injected fault")
            if not isinstance(message, str):
                raise ValueError(f"{where}.message must be a string")
            rule.message = message
        return rule

    def to_json(self) -> dict[str, Any]:
        """The rule as the admin API shows it (same shape as it was installed)."""
        out: dict[str, Any] = {"target": self.target, "action": self.action, "count": self.count}
        if self.status is not None:
            out["status"] = self.status
        if self.retry_after is not None:
            out["retryAfter"] = self.retry_after
        if self.action == "hang":
            out["seconds"] = self.seconds
        if self.action == "fail":
            out["message"] = self.message
        return out


class FaultBook:
    """The installed fault rules; thread-safe (job runner threads consume ``job`` rules)."""

    def __init__(self, rules: list[FaultRule] | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = list(rules or [])

    @staticmethod
    def parse_rules(body: Any) -> list[FaultRule]:
        """Validate ``{"rules": [...]}`` (or a bare list); raise ``ValueError`` when wrong."""
        raw = body.get("rules") if isinstance(body, dict) else body
        if not isinstance(raw, list):
            raise ValueError('body must be {"rules": [...]}')
        return [FaultRule.parse(item, i) for i, item in enumerate(raw)]

    @classmethod
    def from_file(cls, path: str | Path) -> FaultBook:
        """Load rules from a JSON file (same format as ``PUT /admin/faults``)."""
        text = Path(path).read_text(encoding="utf-8")
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"fault file {path} is not JSON: {exc}") from exc
        return cls(cls.parse_rules(body))

    def replace(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self._rules = list(rules)

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_json() for rule in self._rules]

    def take(self, target: str) -> FaultRule | None:
        """Consume the first rule for ``target`` (decrement its count) and return it."""
        with self._lock:
            for i, rule in enumerate(self._rules):
                if rule.target != target:
                    continue
                if rule.count > 0:
                    rule.count -= 1
                    if rule.count == 0:
                        del self._rules[i]
                return FaultRule(**{**rule.__dict__, "count": 1})
        return None

    def take_job_rule(self) -> FaultRule | None:
        """Consume the ``job`` rule for a job that starts now (``None``: behave normally)."""
        return self.take("job")

    async def apply(self, target: str) -> None:
        """Fire the next ``submit``/``status`` rule: return, wait then return, or raise.

        Raises
        ------
        ApiError
            With the rule's status, and ``Retry-After`` when the rule has ``retryAfter``.
        """
        rule = self.take(target)
        if rule is None:
            return
        if rule.action == "hang":
            await asyncio.sleep(rule.seconds)
            return
        if rule.action == "status" and rule.status is not None:
            headers = None
            if rule.retry_after is not None:
                headers = {"Retry-After": str(rule.retry_after)}
            raise ApiError(
                rule.status,
                STATUS_CODES.get(rule.status, "InjectedFault"),
                f"Injected fault: {target} answers {rule.status}.",
                headers=headers,
            )


# Mounted by ``create_app`` only with ``config.faults``, behind ``auth.require_admin``.
router = APIRouter()


def _book(request: Request) -> FaultBook:
    return request.app.state.faults


@router.put("/admin/faults")
async def put_faults(request: Request) -> dict[str, Any]:
    """Replace all fault rules with the body's ``rules``."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise ApiError(400, "BadArgument", "Body must be JSON {\"rules\": [...]}.") from exc
    try:
        rules = FaultBook.parse_rules(body)
    except ValueError as exc:
        raise ApiError(400, "BadArgument", str(exc)) from exc
    _book(request).replace(rules)
    return {"rules": _book(request).rules()}


@router.get("/admin/faults")
async def get_faults(request: Request) -> dict[str, Any]:
    """List the rules that are left."""
    return {"rules": _book(request).rules()}


@router.delete("/admin/faults")
async def delete_faults(request: Request) -> dict[str, Any]:
    """Remove all rules."""
    _book(request).clear()
    return {"rules": []}
