"""Advisory floors (constraints.txt): no installed package is older than its floor.

pip-audit needs an advisory service (PyPI's JSON API or OSV) or a local database; no package
on PyPI ships a current PyPA advisory database for offline use (safety-db stopped in 2021;
appthreat-vulnerability-db downloads its data at run time). So the floors are kept by hand in
constraints.txt, and this test is the check `make test` runs.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def _requirements(path: Path) -> list[Requirement]:
    found = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            found.append(Requirement(line))
    return found


FLOORS = _requirements(ROOT / "constraints.txt")


def _floor(req: Requirement) -> str:
    (spec,) = [s for s in req.specifier if s.operator == ">="]
    return spec.version


def test_the_floors_table_is_not_empty_and_names_only_floors():
    assert len(FLOORS) >= 9
    assert all(len(req.specifier) == 1 and _floor(req) for req in FLOORS)


@pytest.mark.parametrize("floor", FLOORS, ids=lambda r: r.name)
def test_installed_version_is_at_or_above_its_advisory_floor(floor: Requirement):
    try:
        installed = version(floor.name)
    except PackageNotFoundError:
        pytest.fail(f"{floor.name} is in constraints.txt but not installed: drop or fix it")

    assert floor.specifier.contains(installed, prereleases=True), (
        f"{floor.name} {installed} is below its advisory floor {floor.specifier} "
        "(constraints.txt): upgrade it (make setup)")


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-dev.txt"])
def test_requirement_files_apply_the_table_and_state_no_lower_floor(name: str):
    text = (ROOT / name).read_text()
    floors = {canonicalize_name(r.name): Version(_floor(r)) for r in FLOORS}

    # requirements-dev.txt includes requirements.txt, hence its -c line
    assert "-c constraints.txt" in text or "-r requirements.txt" in text
    for req in _requirements(ROOT / name):
        floor = floors.get(canonicalize_name(req.name))
        for spec in req.specifier:
            if floor is not None and spec.operator == ">=":
                assert Version(spec.version) >= floor, \
                    f"{name}: {req} states a floor below constraints.txt ({floor})"
