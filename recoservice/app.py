"""The recoservice FastAPI application: ``create_app(config)`` wires state, scorer and routes.

All routes hang off ``/recommendations/v4.0``. ``/docs`` and ``/openapi.json`` need no key;
every other path needs ``Ocp-Apim-Subscription-Key``: ``recoservice.guard.ApiGuard`` checks it
(and caps the body) for the whole app, before any route runs. The fault routes
``/admin/faults`` exist only with ``config.faults`` and also need an admin key.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
from recoservice.artifacts import open_artifacts
from recoservice.auth import KeySet, require_admin
from recoservice.config import Config
from recoservice.demo import ensure_demo
from recoservice.errors import install_error_handlers
from recoservice.faults import FaultBook
from recoservice.guard import ApiGuard
from recoservice.scoring import Scorer
from recoservice.state import State

log = logging.getLogger("recoservice")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    # A clean stop (SIGTERM) ends this replica's operations at once; a crash leaves them to
    # their leases (see recoservice.state).
    app.state.state.release()


def create_app(config: Config) -> FastAPI:
    """Build the app; with ``config.demo`` the demo model is ready before it returns.

    ``app.state`` holds ``config``, ``state`` (``State``), ``scorer`` (``Scorer``),
    ``faults`` (``FaultBook``, empty unless ``config.faults``) and ``admin_keys``.
    """
    app = FastAPI(title="recoservice", version="4.0", lifespan=_lifespan,
                  description="A Recommendations API v4.0-compatible service (SAR builds, "
                              "item-to-item and user-to-item recommendations, batch jobs).")
    app.state.config = config
    app.state.state = State(
        config.state_dir, database=config.database, lease_seconds=config.lease_seconds,
        artifacts=open_artifacts(config.artifacts_url, config.artifacts_connection,
                                 config.artifacts_container))
    if app.state.state.database.shared and not (config.artifacts_url
                                                or config.artifacts_connection):
        log.warning("a shared database without --artifacts: builds and usage files stay on "
                    "this replica's disk, and other replicas cannot load them")
    app.state.scorer = Scorer(app.state.state)
    app.state.faults = (FaultBook.from_file(config.faults_file) if config.faults_file
                        else FaultBook())
    app.state.admin_keys = KeySet(config.admin_keys)
    install_error_handlers(app)
    # ApiGuard checks the key of every request before any route (the one gate); routes that
    # need the caller's key take it with Depends(require_key). No router-wide dependency:
    # FastAPI's dependency solving costs a single call more than scoring it does.
    # Routes are matched in order: the single-call hot paths first.
    for router in (recommend_api.router, models_api.router, data_api.router,
                   builds_api.router, operations.router, batch.router):
        app.include_router(router, prefix=API_PREFIX)
    if config.faults:
        app.include_router(faults.router, prefix=API_PREFIX,
                           dependencies=[Depends(require_admin)])
    app.add_middleware(ApiGuard, keys=KeySet(config.keys),
                       upload_limits={"catalog": config.max_catalog_bytes,
                                      "usage": config.max_usage_bytes})
    if config.demo:
        ensure_demo(app.state.state)
    log.info("recoservice ready: %r", config)
    return app
