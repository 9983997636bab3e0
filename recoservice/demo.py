"""The ready-to-score models of ``serve --demo``: ``demo`` and ``synthetic``.

``demo``
    The Microsoft Store catalog the official v4 sample client uploaded
    (``samples/msstore-catalog.csv``: 2,034 items such as ``C9F-00163``, ``DAF-00500``, the ids
    of the v4 batch documentation's examples) with usage of 3,000 users synthesised over it by
    ``recoservice.synth.usage_for_catalog`` (seed 42), so its recommendations can be judged by
    name: a Surface seed gets Surface items.
``synthetic``
    The generated catalog and usage of ``recoservice.synth.generate`` (2,000 items ``SYN-…``,
    3,000 users, seed 42), for tests that need an exact generated shape.

``ensure_demo`` makes sure both exist with an active, succeeded SAR build with default
parameters. It is idempotent: a model that already has a usable active build (e.g. after a
restart on the same state dir) is left alone. A model of one of these names whose description
is not the current one (an older version of the demo) is renamed ``<name>-outdated-<id8>``,
kept with its builds, and a new one is made. Takes a few seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from recoservice.builder import BuildRequest, create_build, run_build
from recoservice.imports import import_catalog, import_usage
from recoservice.models_api import create_model
from recoservice.sar import SarParams
from recoservice.state import State
from recoservice.synth import generate, read_catalog, to_csv, usage_for_catalog

DEMO_NAME = "demo"
DEMO_CATALOG = Path(__file__).resolve().parent.parent / "samples" / "msstore-catalog.csv"
DEMO_USERS, DEMO_SEED = 10000, 42
DEMO_DESCRIPTION = (f"Microsoft Store catalog (msstore-catalog.csv) with synthetic usage "
                    f"({DEMO_USERS} users, seed {DEMO_SEED})")
SYNTHETIC_NAME = "synthetic"
SYNTHETIC_ITEMS, SYNTHETIC_USERS, SYNTHETIC_SEED = 2000, 3000, 42
SYNTHETIC_DESCRIPTION = (f"Synthetic model ({SYNTHETIC_ITEMS} items, {SYNTHETIC_USERS} users, "
                         f"seed {SYNTHETIC_SEED})")
log = logging.getLogger("recoservice.demo")


def _demo_data() -> tuple[bytes, bytes]:
    try:
        catalog_csv = DEMO_CATALOG.read_bytes()
    except OSError as exc:
        raise RuntimeError(f"--demo needs the demo catalog {DEMO_CATALOG}: {exc.strerror}") \
            from exc
    usage = usage_for_catalog(read_catalog(catalog_csv), DEMO_USERS, DEMO_SEED)
    return catalog_csv, to_csv(usage)


def _synthetic_data() -> tuple[bytes, bytes]:
    catalog, usage = generate(SYNTHETIC_ITEMS, SYNTHETIC_USERS, SYNTHETIC_SEED)
    return to_csv(catalog), to_csv(usage)


def ensure_demo(state: State) -> str:
    """Make sure ``demo`` and ``synthetic`` are built; return the id of ``demo``."""
    _ensure(state, SYNTHETIC_NAME, SYNTHETIC_DESCRIPTION, _synthetic_data)
    return _ensure(state, DEMO_NAME, DEMO_DESCRIPTION, _demo_data)


def _ensure(state: State, name: str, description: str,
            data: Callable[[], tuple[bytes, bytes]]) -> str:
    """Return the id of the model ``name``, creating, loading and building it when needed."""
    with state.db() as conn:
        row = conn.execute("SELECT m.id, m.description, m.active_build_id, b.status "
                           "FROM models m LEFT JOIN builds b ON b.id = m.active_build_id "
                           "WHERE m.name = ? ORDER BY m.created LIMIT 1", (name,)).fetchone()
        if row is not None and row["description"] != description:
            old_name = f"{name}-outdated-{str(row['id'])[:8]}"
            conn.execute("UPDATE models SET name = ? WHERE id = ?", (old_name, row["id"]))
            log.info("model %s (%s) is an older %s model: renamed %s", row["id"],
                     row["description"], name, old_name)
            row = None
    if row is not None and row["status"] == "Succeeded" \
            and state.has_artifact(state.build_path(row["id"], row["active_build_id"])):
        log.info("%s model %s is ready (build %s)", name, row["id"], row["active_build_id"])
        return str(row["id"])
    model_id = str(row["id"]) if row is not None else create_model(state, name,
                                                                  description)["id"]
    with state.db() as conn:
        has_usage = conn.execute("SELECT 1 FROM usage_files WHERE model_id = ? LIMIT 1",
                                 (model_id,)).fetchone() is not None
    if not has_usage:
        catalog_csv, usage_csv = data()
        import_catalog(state, model_id, catalog_csv, f"{name} catalog")
        import_usage(state, model_id, usage_csv, f"{name} usage")
    build = BuildRequest("Sar", f"{name} build", SarParams(), set_active=True)
    build_id = create_build(state, model_id, build, operation_id=None)
    run_build(state, model_id, build_id, operation_id=None)
    log.info("%s model %s built (build %s)", name, model_id, build_id)
    return model_id
