"""function_app.py indexes as the worker indexes it: every function, its trigger and bindings,
the blob trigger as an SDK-type binding with the configured source.

Each test indexes in a fresh process (settings such as ``BATCH_TRIGGER_SOURCE`` are read when
the app is indexed). Needs only the app's runtime packages (requirements.txt) and devhost's
indexer, so ``make test-floor`` runs it against the lowest allowed versions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INDEX = ("import json; from pathlib import Path; from devhost.indexer import load_app; "
         "print(json.dumps({f.name: {'trigger': f.trigger, 'client': f.client_binding} "
         "for f in load_app(Path('.'))}))")


def _index(**settings: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BATCH_INPUT_CONTAINER": "in", "BATCH_TRIGGER_SOURCE": "",
           **settings}
    return subprocess.run([sys.executable, "-c", INDEX], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env, check=False)


def _functions(**settings: str) -> dict[str, dict]:
    out = _index(**settings)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_function_of_the_app_is_indexed_with_its_trigger():
    functions = _functions()

    kinds = {name: f["trigger"]["type"] for name, f in functions.items()}
    assert kinds == {
        "start_batch_from_blob": "blobTrigger", "start_batch": "httpTrigger",
        "get_batch": "httpTrigger", "list_batches": "httpTrigger",
        "cancel_batch": "httpTrigger", "rerun_batch": "httpTrigger",
        "status_page": "httpTrigger", "get_recommendations": "httpTrigger",
        "batch_orchestrator": "orchestrationTrigger",
        "chunk_orchestrator": "orchestrationTrigger", "prepare_batch": "activityTrigger",
        "submit_chunk": "activityTrigger", "check_operation": "activityTrigger",
        "verify_output": "activityTrigger", "cancel_operation": "activityTrigger",
        "is_cancel_requested": "activityTrigger", "merge_results": "activityTrigger",
        "write_marker": "activityTrigger", "notify_run": "activityTrigger",
        "prepare_rerun": "activityTrigger", "fill_cache": "activityTrigger"}
    starters = {name for name, f in functions.items() if f["client"] == "client"}
    assert starters == {"start_batch_from_blob", "start_batch", "get_batch", "list_batches",
                        "cancel_batch", "rerun_batch"}


@pytest.mark.parametrize(("setting", "source"), [
    ("", "LogsAndContainerScan"), ("EventGrid", "EventGrid"),
    ("LogsAndContainerScan", "LogsAndContainerScan")])
def test_blob_trigger_is_an_sdk_type_binding_with_the_configured_source(setting, source):
    trigger = _functions(BATCH_TRIGGER_SOURCE=setting)["start_batch_from_blob"]["trigger"]

    # as azure-functions-runtime's loader indexes it (checked with its get_fx_raw_bindings):
    # the flag makes the host send a reference to the blob, not the blob
    assert trigger == {"direction": "IN", "type": "blobTrigger", "name": "blob",
                       "path": "%BATCH_INPUT_CONTAINER%/{name}",
                       "connection": "AzureWebJobsStorage", "source": source,
                       "properties": {"SupportsDeferredBinding": True}}


def test_a_bad_trigger_source_stops_indexing_naming_the_setting():
    out = _index(BATCH_TRIGGER_SOURCE="Polling")

    assert out.returncode != 0
    assert "BATCH_TRIGGER_SOURCE must be one of EventGrid, LogsAndContainerScan" in out.stderr
