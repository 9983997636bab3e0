"""The recoservice FastAPI application: ``create_app(config)`` wires state, scorer and routes.

All routes hang off ``/recommendations/v4.0``. ``/docs`` and ``/openapi.json`` need no key;
every other route needs ``Ocp-Apim-Subscription-Key`` (the batch and fault routers check it
themselves with ``recoservice.auth.require_key``).
"""

from __future__ import annotations

import logging

from fastapi import Depends, FastAPI

from recoservice import (
    API_PREFIX,
    batch,
    builds_api,
    data_api,
    faults,
    models_api,
    operations,
    recommend_api,
)
from recoservice.auth import require_key
from recoservice.config import Config
from recoservice.demo import ensure_demo
from recoservice.errors import install_error_handlers
from recoservice.faults import FaultBook
from recoservice.scoring import Scorer
from recoservice.state import State

log = logging.getLogger("recoservice")


def create_app(config: Config) -> FastAPI:
    """Build the app; with ``config.demo`` the demo model is ready before it returns.

    ``app.state`` holds ``config``, ``state`` (``State``), ``scorer`` (``Scorer``) and
    ``faults`` (``FaultBook``).
    """
    app = FastAPI(title="recoservice", version="4.0",
                  description="A Recommendations API v4.0-compatible service (SAR builds, "
                              "item-to-item and user-to-item recommendations, batch jobs).")
    app.state.config = config
    app.state.state = State(config.state_dir)
    app.state.scorer = Scorer(app.state.state)
    app.state.faults = (FaultBook.from_file(config.faults_file) if config.faults_file
                        else FaultBook())
    install_error_handlers(app)
    keyed = [Depends(require_key)]
    for router in (models_api.router, data_api.router, recommend_api.router):
        app.include_router(router, prefix=API_PREFIX, dependencies=keyed)
    # builds and operations check the key inside (they need it, or faults must run first).
    app.include_router(builds_api.router, prefix=API_PREFIX)
    app.include_router(operations.router, prefix=API_PREFIX)
    app.include_router(batch.router, prefix=API_PREFIX)
    app.include_router(faults.router, prefix=API_PREFIX)
    if config.demo:
        ensure_demo(app.state.state)
    log.info("recoservice ready: %r", config)
    return app
