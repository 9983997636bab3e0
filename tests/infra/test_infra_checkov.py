"""checkov's Bicep checks on infra/: none fails, every file parses, every skip has a reason.

checkov lives in its own virtual environment, .venv-checkov (`make setup` creates it), because
it pins versions the app's environment must not be held to.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from infra_helpers import INFRA, ROOT

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


@pytest.fixture(scope="module")
def report() -> dict:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV.relative_to(ROOT)} is missing: run `make setup` (or `make test`)")
    # --skip-download: no call to the vendor's platform (there is no network here, nor in CI).
    result = subprocess.run(
        [str(CHECKOV), "--directory", str(INFRA), "--framework", "bicep", "--skip-download",
         "--output", "json"],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.stdout.strip(), result.stderr[-2000:]
    data = json.loads(result.stdout)
    return data[0] if isinstance(data, list) else data


@pytest.mark.slow
def test_checkov_finds_no_failed_check(report):
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})"
              for c in report["results"]["failed_checks"]]

    assert failed == []
    assert report["summary"]["passed"] > 0


@pytest.mark.slow
def test_checkov_parses_every_bicep_file(report):
    assert report["results"]["parsing_errors"] == []
    assert report["summary"]["parsing_errors"] == 0


@pytest.mark.slow
def test_every_skipped_check_carries_a_reason(report):
    for check in report["results"]["skipped_checks"]:
        reason = (check.get("check_result") or {}).get("suppress_comment") or ""
        assert len(reason.strip()) >= 20, f"{check['check_id']} on {check['resource']}"
