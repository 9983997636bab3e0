"""Secrets never reach orchestration history, custom status, markers or logs."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.e2e

# A SAS signature with its value (azure-core's own logs print "sig=REDACTED").
SIGNATURE = re.compile(r"sig=(?!REDACTED)[^&\s'\"]+")


def test_no_key_or_sas_token_in_history_status_markers_or_logs(app_factory, demo_items,
                                                               recoservice, dump_sqlite):
    app = app_factory()
    app.upload("secret.json", json.dumps({"requests": [{"SeedItems": demo_items[:3]}]}))
    marker, _ = app.wait_for_marker("secret.json")
    assert marker == "_SUCCESS"
    key = app.settings["RECO_SUBSCRIPTION_KEY"]
    account_key = app.settings["AzureWebJobsStorage"].split("AccountKey=")[1].split(";")[0]

    stored = dump_sqlite(app.workdir / "state" / "devhost.db")
    texts = {
        "devhost state": stored,
        "marker": app.read_output("secret.json/_SUCCESS").decode(),
        "devhost log": app.service.log.read_text(errors="replace"),
        "recoservice log": recoservice.service.log.read_text(errors="replace"),
    }

    assert "TaskScheduled" in stored or "submit_chunk" in stored  # the history is really there
    for where, text in texts.items():
        assert key not in text, where
        assert account_key not in text, where
        assert not SIGNATURE.search(text), where
