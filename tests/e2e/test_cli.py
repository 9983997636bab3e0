"""``python -m recobatch submit FILE --wait`` against a running devhost."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from devhost.services import REPO_ROOT

pytestmark = pytest.mark.e2e


def test_submit_wait_uploads_follows_the_run_and_prints_the_marker(app_factory, demo_items,
                                                                   tmp_path):
    app = app_factory()
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"Values": app.settings}))
    requests_file = tmp_path / "mine.json"
    requests_file.write_text(json.dumps({"requests": [{"SeedItems": demo_items[:2]}]}))

    done = subprocess.run(
        [sys.executable, "-m", "recobatch", "submit", str(requests_file), "--wait",
         "--timeout", "120", "--settings", str(settings)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=180, check=False)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "mine.json/_SUCCESS" in done.stdout
    assert app.read_output("mine.json/results.json") is not None
    assert app.settings["RECO_SUBSCRIPTION_KEY"] not in done.stdout + done.stderr


def test_submit_of_a_missing_file_is_a_clear_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "recobatch", "submit", str(tmp_path / "nope")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)

    assert done.returncode == 2
    assert "no such file" in done.stderr
