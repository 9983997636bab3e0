"""``python -m recoservice load`` against a real recoservice: model, catalog, usage, build,
then the printed ids score."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from recoservice import load
from recoservice.__main__ import main
from recoservice.demo import DEMO_CATALOG
from recoservice.synth import read_catalog, to_csv, usage_for_catalog


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A 300-item slice of the Microsoft Store catalog and its usage in two files."""
    catalog = read_catalog(DEMO_CATALOG.read_bytes())[:300]
    usage = usage_for_catalog(catalog, 1500, 3)
    paths = tmp_path / "catalog.csv", tmp_path / "usage1.csv", tmp_path / "usage2.csv"
    paths[0].write_bytes(to_csv(catalog))
    paths[1].write_bytes(to_csv(usage[: len(usage) // 2]))
    paths[2].write_bytes(to_csv(usage[len(usage) // 2:]))
    return paths


def _run(*argv: str) -> int:
    with pytest.raises(SystemExit) as exited:
        main(["load", *argv])
    return int(exited.value.code or 0)


def _ids(out: str) -> tuple[str, int]:
    model = re.search(r"^RECO_MODEL_ID=(\S+)$", out, re.M)
    build = re.search(r"^RECO_BUILD_ID=(\d+)$", out, re.M)
    assert model and build, out
    return model.group(1), int(build.group(1))


def test_load_builds_a_model_whose_printed_ids_recommend(recoservice, files, capsys,
                                                         monkeypatch):
    monkeypatch.setattr(load, "PROGRESS_MIN_BYTES", 0)
    catalog, usage1, usage2 = files

    code = _run("--endpoint", recoservice.base_url, "--key", recoservice.key,
                "--name", "my-store", "--catalog", str(catalog), "--usage", str(usage1),
                "--usage", str(usage2), "--build-type", "recommendation", "--wait")

    out, err = capsys.readouterr()
    assert code == 0, err
    model_id, build_id = _ids(out)
    assert "catalog catalog.csv: 300 lines, 300 imported, 0 bad" in err
    assert "usage usage1.csv:" in err and "usage usage2.csv:" in err
    assert "uploading usage2.csv:" in err and "(100 %)" in err
    assert f"build {build_id}: Succeeded 100 %" in err
    builds = requests.get(f"{recoservice.base_url}/models/{model_id}/builds",
                          headers=recoservice.headers(), timeout=10).json()["builds"]
    assert [(b["id"], b["type"], b["status"]) for b in builds] \
        == [(build_id, "Recommendation", "Succeeded")]
    usage_files = requests.get(f"{recoservice.base_url}/models/{model_id}/usage",
                               headers=recoservice.headers(), timeout=10).json()["value"]
    assert sorted(f["name"] for f in usage_files) == ["usage1.csv", "usage2.csv"]
    seed = catalog.read_text().split(",", 1)[0]
    recs = requests.get(f"{recoservice.base_url}/models/{model_id}/recommend/item",
                        params={"itemIds": seed, "numberOfResults": 5, "buildId": build_id},
                        headers=recoservice.headers(), timeout=10).json()["recommendedItems"]
    assert len(recs) == 5 and seed not in [r["items"][0]["id"] for r in recs]


def test_key_from_the_environment_and_no_wait(recoservice, files, capsys, monkeypatch):
    monkeypatch.setenv("RECO_SUBSCRIPTION_KEY", recoservice.key)
    catalog, usage1, _ = files

    code = _run("--endpoint", recoservice.base_url, "--name", "env-key",
                "--catalog", str(catalog), "--usage", str(usage1))

    out, err = capsys.readouterr()
    assert code == 0, err
    model_id, build_id = _ids(out)
    assert "follow it: GET " in err and "/operations/" in err
    assert recoservice.key not in out + err
    model = requests.get(f"{recoservice.base_url}/models/{model_id}",
                         headers=recoservice.headers(), timeout=10).json()
    assert model["name"] == "env-key"


def test_a_refusal_is_the_services_sentence_not_a_stack_trace(recoservice, files):
    catalog, usage1, _ = files
    env = {**os.environ, "RECO_SUBSCRIPTION_KEY": "wrong-key-123"}

    proc = subprocess.run([sys.executable, "-m", "recoservice", "load",
                           "--endpoint", recoservice.base_url, "--name", "nope",
                           "--catalog", str(catalog), "--usage", str(usage1)],
                          env=env, capture_output=True, text=True, timeout=60)

    assert proc.returncode == 1
    assert proc.stderr.startswith("error: create model: ")
    assert "(HTTP 401" in proc.stderr
    assert "Traceback" not in proc.stderr and "wrong-key-123" not in proc.stderr
    assert proc.stdout == ""


def test_a_catalog_with_no_valid_line_stops_before_usage_and_names_the_model(
        recoservice, files, tmp_path, capsys):
    _, usage1, _ = files
    bad = tmp_path / "bad.csv"
    bad.write_text("only-an-id\nanother\n")

    code = _run("--endpoint", recoservice.base_url, "--key", recoservice.key,
                "--name", "bad-catalog", "--catalog", str(bad), "--usage", str(usage1))

    _, err = capsys.readouterr()
    assert code == 1
    assert "catalog bad.csv: 2 lines, 0 imported, 2 bad (MissingFields 2)" in err
    assert "error: catalog bad.csv: no line was imported" in err
    assert re.search(r"model [0-9a-f-]{36} was created", err)
    assert "usage usage1.csv" not in err


def test_a_missing_file_is_named_before_anything_is_created(recoservice, tmp_path, capsys):
    code = _run("--endpoint", recoservice.base_url, "--key", recoservice.key, "--name", "x",
                "--catalog", str(tmp_path / "none.csv"), "--usage", str(tmp_path / "u.csv"))

    _, err = capsys.readouterr()
    assert code == 1
    assert err.strip() == f"error: {tmp_path / 'none.csv'}: no such file"


def test_without_any_key_the_command_says_where_to_put_it(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("RECO_SUBSCRIPTION_KEY", raising=False)

    code = _run("--endpoint", "http://127.0.0.1:9/x", "--name", "x",
                "--catalog", str(tmp_path / "c.csv"), "--usage", str(tmp_path / "u.csv"))

    assert code == 2
    assert "give --key or set RECO_SUBSCRIPTION_KEY" in capsys.readouterr().err
