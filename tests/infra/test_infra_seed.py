"""scripts/seed_recoservice.py against a real recoservice: the model it prints is built and
active, and the key it was given appears nowhere in what it prints."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import requests
from infra_helpers import ROOT

from devhost.services import start_recoservice


def test_seed_script_builds_a_model_and_prints_only_its_id(tmp_path):
    key = "seed-" + uuid.uuid4().hex
    service = start_recoservice(tmp_path, keys=[key], demo=False)
    base = str(service.extra["base_url"])
    env = {**os.environ, "RECO_ENDPOINT": base, "RECO_SUBSCRIPTION_KEY": key}
    try:
        result = subprocess.run(
            [sys.executable, "scripts/seed_recoservice.py", "--synthetic", "--items", "300",
             "--users", "400", "--poll", "0.5", "--timeout", "240"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        headers = {"Ocp-Apim-Subscription-Key": key}
        model_id = result.stdout.strip()
        model = requests.get(f"{base}/models/{model_id}", headers=headers, timeout=30)
        builds = requests.get(f"{base}/models/{model_id}/builds", headers=headers, timeout=30)
    finally:
        service.stop()

    assert result.returncode == 0, result.stderr
    assert model.status_code == 200
    assert model.json()["activeBuildId"]
    assert [b["status"] for b in builds.json()["builds"]] == ["Succeeded"]
    assert key not in result.stdout + result.stderr
