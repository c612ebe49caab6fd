"""The API application: `create_app()` wires the store, Dagster and the warehouse to the routes.

On start the store's migrations run. A sync's runs are launched in its request and its state is
read from Dagster when asked: no background work. Swagger UI is at /docs, the schema at
/openapi.json.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine

from integration_platform.access.customers import CustomerReader
from integration_platform.access.published import PublishedWarehouse
from integration_platform.api.errors import (
    install_error_handlers,
    reject_unknown_query_parameters,
)
from integration_platform.api.metrics import ApiMetrics
from integration_platform.api.request_log import RequestLogMiddleware
from integration_platform.api.routes import clients, customers, health, syncs
from integration_platform.api.services import Services
from integration_platform.api.settings import ApiSettings
from integration_platform.clients.api_keys import (
    ADMIN_KEY_VARIABLE,
    MIN_ADMIN_KEY_LENGTH,
    ApiKeys,
)
from integration_platform.clients.crypto import load_cipher
from integration_platform.clients.database import open_store
from integration_platform.clients.registry import ClientRegistry
from integration_platform.clients.syncs import SyncLedger
from integration_platform.logs import get_logger
from integration_platform.orchestration.dagster_graphql import DagsterGraphQL
from integration_platform.orchestration.orchestrator import Orchestrator
from integration_platform.orchestration.status import StatusReader
from integration_platform.orchestration.sync_state import SyncStateReader

_log = get_logger("integration_platform.api")

DESCRIPTION = """\
Registers integration clients (each with its own credentials for the platform's sources),
starts and follows their syncs (Dagster runs), and serves their consolidated customers.
Authenticate with `Authorization: Bearer <API key>`; every refusal is JSON with a `code`,
a `message` saying what to do and, for invalid fields, their paths.
"""


def build_services(settings: ApiSettings, metrics: ApiMetrics) -> Services:
    admin_key = os.environ.get(ADMIN_KEY_VARIABLE, "")
    if 0 < len(admin_key) < MIN_ADMIN_KEY_LENGTH:
        _log.warning(
            "admin_key_ignored",
            reason=f"{ADMIN_KEY_VARIABLE} is shorter than "
            f"{MIN_ADMIN_KEY_LENGTH} characters and is ignored; use a longer one",
        )
    sessions = open_store(settings.database_url)
    registry = ClientRegistry(sessions, load_cipher())
    ledger = SyncLedger(sessions)
    orchestrator = Orchestrator(DagsterGraphQL(settings.dagster_url))
    return Services(
        registry=registry,
        api_keys=ApiKeys(sessions),
        ledger=ledger,
        orchestrator=orchestrator,
        sync_states=SyncStateReader(orchestrator),
        status=StatusReader(orchestrator),
        customers=CustomerReader(PublishedWarehouse(settings.published_warehouse)),
        metrics=metrics,
        dagster_storage=(
            # One connection, checked before use; a server that does not answer fails the
            # readiness check within seconds, not at the driver's default of minutes.
            create_engine(
                settings.dagster_storage_url,
                pool_size=1,
                max_overflow=0,
                pool_pre_ping=True,
                connect_args={"connect_timeout": 5},
            )
            if settings.dagster_storage_url
            else None
        ),
        celery_broker_url=settings.celery_broker_url,
    )


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """The app. Nothing runs in the background: a sync's state is read from Dagster when
    asked."""
    settings = settings or ApiSettings.from_environment()
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        found = build_services(settings, metrics)
        app.state.services = found
        try:
            yield
        finally:
            found.orchestrator.graphql.close()
            found.customers.warehouse.close()
            if found.dagster_storage is not None:
                found.dagster_storage.dispose()

    app = FastAPI(
        title="Integration Platform API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(reject_unknown_query_parameters)],
    )
    install_error_handlers(app)
    for module in (clients, syncs, customers, health):
        app.include_router(module.router)
    app.add_middleware(RequestLogMiddleware, metrics=metrics)
    return app
