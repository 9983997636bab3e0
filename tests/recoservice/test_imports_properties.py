"""Import statistics add up whatever the lines are (hypothesis)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from recoservice.imports import import_catalog, import_usage
from recoservice.models_api import create_model
from recoservice.state import State

_field = st.text(alphabet="abcXYZ019-=:T ", max_size=60)
_line = st.lists(_field, min_size=0, max_size=6).map(",".join)
_lines = st.lists(_line, max_size=25).map("\n".join)


@settings(max_examples=40, deadline=None)
@given(catalog=_lines, usage=_lines)
def test_processed_equals_imported_plus_errors(catalog: str, usage: str):
    with tempfile.TemporaryDirectory() as tmp:
        state = State(Path(tmp))
        model_id = create_model(state, "p")["id"]

        results = [(catalog, import_catalog(state, model_id, catalog.encode(), "c")),
                   (usage, import_usage(state, model_id, usage.encode(), "u")[0])]
        state.close()

    for text, stats in results:
        body = stats.to_json()
        # Blank lines (only commas and spaces) are skipped; every other line is counted once.
        counted = sum(1 for ln in text.split("\n") if ln.replace(",", "").strip())
        assert body["processedLineCount"] == counted
        assert body["processedLineCount"] == body["importedLineCount"] + body["errorLineCount"]
        assert body["errorLineCount"] == sum(e["errorCodeCount"] for e in body["errorSummary"])
