"""The API's settings, from the environment (the same variables the rest of the platform reads)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from integration_platform import environment
from integration_platform.celery_workers import broker_url
from integration_platform.clients.database import database_url
from integration_platform.landing.warehouse import Warehouse
from integration_platform.orchestration.dagster_graphql import webserver_url
from integration_platform.orchestration.instance import storage_url


@dataclass(frozen=True)
class ApiSettings:
    database_url: str
    dagster_url: str
    published_warehouse: Path
    # Dagster's storage database in the production instance profile (readiness checks it);
    # None in the local profile, whose SQLite files the webserver's check covers.
    dagster_storage_url: str | None = None
    # The celery broker the runs' steps go through (CELERY_BROKER_URL), when they do: readiness
    # checks it answers. None: steps run in the runs' own processes, no broker to ask.
    celery_broker_url: str | None = None

    @classmethod
    def from_environment(cls) -> ApiSettings:
        return cls(
            database_url=database_url(),
            dagster_url=webserver_url(),
            published_warehouse=Warehouse(environment.warehouse_path()).published_path,
            dagster_storage_url=storage_url(),
            celery_broker_url=broker_url(),
        )
