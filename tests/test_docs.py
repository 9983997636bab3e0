"""README.md stays true: every app setting, the two commands, and what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

from recobatch.settings import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_app_setting_is_in_the_readme_table_with_its_default():
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([^`]+)` \| ([^|]+) \|", README,
                                                        re.M)}
    for spec in SETTINGS:
        assert spec.name in rows, f"README settings table lacks {spec.name}"
        if spec.default is not None:
            assert f"`{spec.default}`" in rows[spec.name], spec.name


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line for line in ci.splitlines() if line and not line.startswith(("#", "set ",
                                                                                 "cd "))]
    assert commands == ["make test"]
    assert "| `make test` |" in README and "| `make run` |" in README


def test_makefile_has_the_documented_targets():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("test", "run", "demo", "bench"):
        assert re.search(rf"^{target}:", makefile, re.M), target
        assert f"make {target}" in README, target
