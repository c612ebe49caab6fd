"""What the routes work with, built once per app: the store, Dagster, the warehouse, metrics."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import Engine

from integration_platform.access.customers import CustomerReader
from integration_platform.api.metrics import ApiMetrics
from integration_platform.clients.api_keys import ApiKeys
from integration_platform.clients.registry import ClientRegistry
from integration_platform.clients.syncs import SyncLedger
from integration_platform.orchestration.orchestrator import Orchestrator
from integration_platform.orchestration.status import StatusReader
from integration_platform.orchestration.sync_state import SyncStateReader


@dataclass
class Services:
    registry: ClientRegistry
    api_keys: ApiKeys
    ledger: SyncLedger
    orchestrator: Orchestrator
    sync_states: SyncStateReader
    status: StatusReader
    customers: CustomerReader
    metrics: ApiMetrics
    # Dagster's storage database (the production instance profile), for readiness; else None.
    dagster_storage: Engine | None = None
    # The celery broker's URL (CELERY_BROKER_URL), for readiness; None without workers.
    celery_broker_url: str | None = None


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found
