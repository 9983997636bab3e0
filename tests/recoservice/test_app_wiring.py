"""The command line and app wiring: --faults file, keys required, routers mounted."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests


def test_faults_file_is_loaded_at_start(recoservice_factory, tmp_path):
    rules = {"rules": [{"target": "status", "action": "status", "status": 503, "count": 2}]}
    path = tmp_path / "faults.json"
    path.write_text(json.dumps(rules))

    reco = recoservice_factory(demo=False, faults=path)

    listed = reco.faults()
    status = requests.get(f"{reco.base_url}/operations/x", headers=reco.headers(), timeout=10)
    assert listed[0]["target"] == "status" and listed[0]["count"] == 2
    assert status.status_code == 503


def test_serve_without_a_key_refuses_to_start(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "recoservice", "serve", "--port", "1",
                           "--state-dir", str(tmp_path)], capture_output=True, text=True,
                          timeout=60)

    assert proc.returncode == 2
    assert "--key" in proc.stderr


def test_a_database_password_on_the_command_line_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "recoservice", "serve", "--port", "1",
                           "--state-dir", str(tmp_path), "--key", "k", "--database",
                           "postgresql://reco:s3cret@127.0.0.1:1/reco"],
                          capture_output=True, text=True, timeout=60)

    assert proc.returncode == 2
    assert "PGPASSWORD" in proc.stderr
    assert "s3cret" not in proc.stderr


def test_an_unknown_database_scheme_is_refused_naming_the_option(tmp_path):
    from recoservice.database import open_database

    with pytest.raises(ValueError, match="--database"):
        open_database("mysql://x/y", tmp_path)


def test_a_sqlite_url_names_the_database_file(tmp_path):
    from recoservice.database import open_database

    db = open_database(f"sqlite:///{tmp_path / 'elsewhere.db'}", tmp_path / "state")

    assert (tmp_path / "elsewhere.db").exists()
    assert not (tmp_path / "state" / "recoservice.db").exists()
    assert db.schema_version() >= 2


def test_batch_routes_are_mounted_under_the_v4_prefix(recoservice):
    resp = requests.get(f"{recoservice.base_url}/batchjobs", headers=recoservice.headers(),
                        timeout=10)

    assert resp.status_code == 200
    assert "batchJobs" in resp.json()


def test_keys_can_come_from_a_key_file(tmp_path):
    from devhost.services import start_recoservice

    key_file = tmp_path / "keys.txt"
    key_file.write_text("file-key-1\n\nfile-key-2\n")
    svc = start_recoservice(tmp_path / "svc", keys=[], demo=False,
                            extra_args=["--key-file", str(key_file)])
    try:
        base = svc.extra["base_url"]
        ok = requests.get(f"{base}/models", headers={"Ocp-Apim-Subscription-Key": "file-key-2"},
                          timeout=10)
        bad = requests.get(f"{base}/models", headers={"Ocp-Apim-Subscription-Key": "x"},
                           timeout=10)
    finally:
        svc.stop()

    assert ok.status_code == 200
    assert bad.status_code == 401
