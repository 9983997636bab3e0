"""``serve --demo``: a built demo model, created once per state dir."""

from __future__ import annotations

import time

import requests


def _demo_state(reco) -> tuple[list[dict], list[dict]]:
    models = requests.get(f"{reco.base_url}/models", headers=reco.headers(),
                          timeout=10).json()["models"]
    demos = [m for m in models if m["name"] == "demo"]
    builds = requests.get(f"{reco.base_url}/models/{demos[0]['id']}/builds",
                          headers=reco.headers(), timeout=10).json()["builds"]
    return demos, builds


def test_demo_model_is_built_and_active(recoservice):
    demos, builds = _demo_state(recoservice)

    assert [d["id"] for d in demos] == [recoservice.demo_model_id]
    assert demos[0]["activeBuildId"] == builds[0]["id"]
    assert builds[0]["status"] == "Succeeded"


def test_demo_is_idempotent_across_restarts(recoservice_factory, tmp_path):
    first = recoservice_factory(tmp_path / "svc", demo=True)
    demos_before, builds_before = _demo_state(first)
    first.service.stop()

    started = time.monotonic()
    second = recoservice_factory(tmp_path / "svc", demo=True)
    restart_seconds = time.monotonic() - started

    demos_after, builds_after = _demo_state(second)
    assert demos_after == demos_before
    assert [b["id"] for b in builds_after] == [b["id"] for b in builds_before]
    assert len(builds_after) == 1
    assert restart_seconds < 30
