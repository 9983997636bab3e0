"""The ``demo`` model: a ready-to-score model for local runs and tests (``serve --demo``).

``ensure_demo`` makes sure a model named ``demo`` exists with the synthetic catalog and usage
(``recoservice.synth``: 2,000 items, 3,000 users, seed 42) and an active, succeeded SAR build
with default parameters. It is idempotent: when the model already has a usable active build
(e.g. after a restart on the same state dir) it does nothing. Takes about a second.
"""

from __future__ import annotations

import logging

from recoservice.builder import BuildRequest, create_build, run_build
from recoservice.imports import import_catalog, import_usage
from recoservice.models_api import create_model
from recoservice.sar import SarParams
from recoservice.state import State
from recoservice.synth import generate, to_csv

DEMO_NAME = "demo"
DEMO_ITEMS, DEMO_USERS, DEMO_SEED = 2000, 3000, 42
log = logging.getLogger("recoservice.demo")


def ensure_demo(state: State) -> str:
    """Return the id of the ``demo`` model, creating and building it when needed."""
    with state.db() as conn:
        row = conn.execute("SELECT m.id, m.active_build_id, b.status FROM models m "
                           "LEFT JOIN builds b ON b.id = m.active_build_id "
                           "WHERE m.name = ? ORDER BY m.created LIMIT 1",
                           (DEMO_NAME,)).fetchone()
    if row is not None and row["status"] == "Succeeded" \
            and state.build_path(row["id"], row["active_build_id"]).exists():
        log.info("demo model %s is ready (build %s)", row["id"], row["active_build_id"])
        return str(row["id"])
    if row is None:
        model_id = create_model(state, DEMO_NAME, "Synthetic demo model "
                                f"({DEMO_ITEMS} items, {DEMO_USERS} users, seed {DEMO_SEED})")["id"]
    else:
        model_id = str(row["id"])
    with state.db() as conn:
        has_usage = conn.execute("SELECT 1 FROM usage_files WHERE model_id = ? LIMIT 1",
                                 (model_id,)).fetchone() is not None
    if not has_usage:
        catalog, usage = generate(DEMO_ITEMS, DEMO_USERS, DEMO_SEED)
        import_catalog(state, model_id, to_csv(catalog), "demo catalog")
        import_usage(state, model_id, to_csv(usage), "demo usage")
    build = BuildRequest("Sar", "demo build", SarParams(), set_active=True)
    build_id = create_build(state, model_id, build, operation_id=None)
    run_build(state, model_id, build_id, operation_id=None)
    log.info("demo model %s built (build %s)", model_id, build_id)
    return model_id
