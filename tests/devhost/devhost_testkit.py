"""The test-side view of a running devhost (imported by tests/devhost's conftest and tests)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from devhost.services import Service

SAMPLE_APP = Path(__file__).resolve().parent / "sample_app"
TERMINAL = ("Completed", "Failed", "Terminated")


@dataclass
class DevHost:
    """A running devhost and the calls the tests make to it."""

    service: Service
    key: str
    state_dir: Path  # the sample app's side-effect files
    container: str

    @property
    def base(self) -> str:
        return str(self.service.extra["base_url"])

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        params = {"code": self.key, **kwargs.pop("params", {})}
        return requests.request(method, f"{self.base}/api/{path}", params=params, timeout=30,
                                **kwargs)

    def start(self, name: str, payload: Any = None, instance_id: str | None = None) -> str:
        """Start through the sample's HTTP starter (the SDK client + check-status response)."""
        params = {"id": instance_id} if instance_id else {}
        resp = self.api("POST", f"start/{name}", params=params,
                        data=json.dumps(payload) if payload is not None else b"")
        assert resp.status_code == 202, resp.text
        return str(resp.json()["id"])

    def status(self, instance_id: str, history: bool = True) -> requests.Response:
        return requests.get(
            f"{self.base}/runtime/webhooks/durabletask/instances/{instance_id}",
            params={"code": self.key, "showHistory": str(history).lower(),
                    "showHistoryOutput": "true"}, timeout=30)

    def wait(self, instance_id: str, timeout: float = 30, statuses: tuple = TERMINAL) -> dict:
        deadline = time.monotonic() + timeout
        body: dict = {}
        while time.monotonic() < deadline:
            resp = self.status(instance_id)
            if resp.status_code in (200, 202):
                body = resp.json()
                if body["runtimeStatus"] in statuses:
                    return body
            time.sleep(0.1)
        raise AssertionError(f"{instance_id} not in {statuses} after {timeout}s: {body}\n"
                             f"{self.service.log_tail()}")

    def raise_event(self, instance_id: str, event: str, data: Any) -> int:
        return self.api("POST", f"raise/{instance_id}/{event}", data=json.dumps(data)).status_code

    def side_effect(self, name: str) -> Path:
        return self.state_dir / name
