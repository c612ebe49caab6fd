"""`/health/ready` in the production instance profile also asks Dagster's storage database
(this machine's PostgreSQL) whether it answers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import URL

from integration_platform.api.app import create_app
from integration_platform.api.settings import ApiSettings
from integration_platform.orchestration.instance import (
    POSTGRES_URL_VARIABLE,
    PROFILE_VARIABLE,
    InstanceProfileError,
)
from integration_platform.webhooks.server import ReceiverServer
from tests.api.conftest import ADMIN_KEY
from tests.api.fake_dagster import FakeDagster
from tests.ports import closed_port


@contextmanager
def serving(settings: ApiSettings) -> Iterator[httpx.Client]:
    server = ReceiverServer(create_app(settings), port=0, name="API server").start()
    try:
        with httpx.Client(
            base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ) as http:
            yield http
    finally:
        server.stop()


def test_ready_says_whether_dagsters_storage_database_answers_when_the_production_profile_runs(
    api_environment: Path,
    fake_dagster: tuple[FakeDagster, str],
    published_warehouse: Path,
    store_database: URL,
    tmp_path: Path,
) -> None:
    _, dagster_url = fake_dagster
    storage = store_database.set(drivername="postgresql+psycopg2", password="not-shown-anywhere")
    settings = ApiSettings(
        database_url=f"sqlite:///{tmp_path / 'platform.sqlite'}",
        dagster_url=dagster_url,
        published_warehouse=published_warehouse,
        dagster_storage_url=storage.render_as_string(hide_password=False),
    )
    with serving(settings) as http:
        ready = http.get("/health/ready")
    assert ready.status_code == 200, ready.text
    check = ready.json()["checks"]["dagster_storage"]
    assert check["ok"] is True
    assert f"{storage.host}:{storage.port or 5432}/{storage.database} answers" in check["detail"]

    down = storage.set(port=closed_port())
    settings = ApiSettings(
        database_url=settings.database_url,
        dagster_url=dagster_url,
        published_warehouse=published_warehouse,
        dagster_storage_url=down.render_as_string(hide_password=False),
    )
    with serving(settings) as http:
        ready = http.get("/health/ready")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["dagster_storage"]["ok"] is False
    assert f":{down.port}/" in body["checks"]["dagster_storage"]["detail"]
    assert body["checks"]["store"]["ok"] is True  # the other parts still say how they are
    assert "not-shown-anywhere" not in ready.text


def test_ready_has_no_storage_check_when_the_local_profile_runs(
    api_environment: Path, fake_dagster: tuple[FakeDagster, str], published_warehouse: Path
) -> None:
    settings = ApiSettings.from_environment()
    assert settings.dagster_storage_url is None  # SQLite under $DAGSTER_HOME: the webserver's
    _, dagster_url = fake_dagster
    local = ApiSettings(
        database_url=f"sqlite:///{api_environment / 'platform.sqlite'}",
        dagster_url=dagster_url,
        published_warehouse=published_warehouse,
    )
    with serving(local) as http:
        ready = http.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert set(ready.json()["checks"]) == {"store", "dagster", "warehouse"}


def test_the_api_names_the_missing_storage_variable_when_started_in_the_production_profile(
    api_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PROFILE_VARIABLE, "production")
    monkeypatch.delenv(POSTGRES_URL_VARIABLE, raising=False)
    with pytest.raises(InstanceProfileError, match=POSTGRES_URL_VARIABLE):
        ApiSettings.from_environment()
    monkeypatch.setenv(POSTGRES_URL_VARIABLE, "postgresql+psycopg2://dagster@db:5432/dagster")
    assert ApiSettings.from_environment().dagster_storage_url == (
        "postgresql+psycopg2://dagster@db:5432/dagster"
    )
