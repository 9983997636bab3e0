"""devhost as a host: indexing, the printed function list, settings, HTTP routes and auth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import requests
from devhost_testkit import SAMPLE_APP, DevHost

from devhost.services import REPO_ROOT, free_port, start_devhost


def test_function_list_is_printed_like_func_start(devhost: DevHost) -> None:
    log = devhost.service.log.read_text()
    port = devhost.service.port

    assert f"echo: [GET,POST] http://127.0.0.1:{port}/api/echo/{{word}}" in log
    assert f"ping: [GET] http://127.0.0.1:{port}/api/ping" in log
    assert "sequence: orchestrationTrigger" in log
    assert "hello: activityTrigger" in log
    assert "on_blob: blobTrigger" in log


def test_anonymous_route_needs_no_key(devhost: DevHost) -> None:
    resp = requests.get(f"{devhost.base}/api/ping", timeout=10)

    assert resp.status_code == 200 and resp.text == "pong"


def test_function_level_route_needs_the_key(devhost: DevHost) -> None:
    url = f"{devhost.base}/api/echo/hi"

    without = requests.get(url, timeout=10)
    wrong = requests.get(url, params={"code": "wrong"}, timeout=10)
    by_query = requests.post(url, params={"code": devhost.key, "q": "1"}, data=b"body",
                             timeout=10)
    by_header = requests.get(url, headers={"x-functions-key": devhost.key}, timeout=10)

    assert without.status_code == 401 and wrong.status_code == 401
    assert by_query.status_code == 200
    assert by_query.json() == {"method": "POST", "word": "hi", "q": "1", "body": "body"}
    assert by_query.headers["Content-Type"].startswith("application/json")
    assert by_header.status_code == 200


def test_management_webhooks_need_the_key(devhost: DevHost) -> None:
    resp = requests.get(f"{devhost.base}/runtime/webhooks/durabletask/instances/", timeout=10)

    assert resp.status_code == 401


def test_settings_file_values_with_environment_override(devhost_factory, tmp_path: Path) -> None:
    workdir = tmp_path / "settings-host"
    workdir.mkdir()
    (workdir / "local.settings.json").write_text(json.dumps({"Values": {
        "SAMPLE_FROM_SETTINGS": "from-file", "SAMPLE_OVERRIDDEN": "from-file"}}))

    host = devhost_factory(workdir, extra_env={"SAMPLE_OVERRIDDEN": "from-env"})

    assert host.api("GET", "setting/SAMPLE_FROM_SETTINGS").text == "from-file"
    assert host.api("GET", "setting/SAMPLE_OVERRIDDEN").text == "from-env"


def test_unsupported_binding_refuses_to_start(tmp_path: Path) -> None:
    app_dir = tmp_path / "queue_app"
    app_dir.mkdir()
    (app_dir / "function_app.py").write_text(
        "import azure.functions as func\n"
        "app = func.FunctionApp()\n"
        "@app.queue_trigger(arg_name='msg', queue_name='q', connection='Conn')\n"
        "def on_message(msg: func.QueueMessage) -> None:\n"
        "    pass\n")

    proc = subprocess.run(
        [sys.executable, "-m", "devhost", "--app-dir", str(app_dir), "--port", str(free_port()),
         "--master-key", "k"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)

    assert proc.returncode == 2
    assert "function 'on_message'" in proc.stderr and "queueTrigger" in proc.stderr


def test_generated_master_key_is_printed_and_works(tmp_path: Path, monkeypatch,
                                                   storage_connection_string: str) -> None:
    monkeypatch.delenv("DEVHOST_MASTER_KEY", raising=False)
    svc = start_devhost(SAMPLE_APP, tmp_path / "genkey", env={
        "SAMPLE_STATE_DIR": str(tmp_path), "SampleStorage": storage_connection_string,
        "SAMPLE_CONTAINER": "unused"})
    try:
        line = next(x for x in svc.log.read_text().splitlines() if "Master key" in x)
        key = line.rsplit(" ", 1)[-1]
        url = f"{svc.extra['base_url']}/api/echo/k"
        assert requests.get(url, params={"code": key}, timeout=10).status_code == 200
        assert requests.get(url, timeout=10).status_code == 401
    finally:
        svc.stop()


def test_keys_and_payloads_stay_out_of_the_log(devhost_factory) -> None:
    host = devhost_factory()
    secret_input = ["top-secret-payload"]
    instance = host.start("sequence", secret_input)
    host.wait(instance)
    host.api("GET", f"status/{instance}")

    log = host.service.log.read_text()

    assert f"instance {instance} (sequence) completed" in log
    assert host.key not in log
    assert "top-secret-payload" not in log
