"""The API on a free loopback port, with its store (every test runs on SQLite and again on
PostgreSQL: tests/postgres.py), a stand-in Dagster webserver and a published warehouse copy
(none, unless a test module asks for the one a real dbt build made: `marts_warehouse`,
tests/conftest.py)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import URL

from integration_platform.api.app import create_app
from integration_platform.api.settings import ApiSettings
from integration_platform.webhooks.server import ReceiverServer
from tests.api.fake_dagster import FakeDagster
from tests.postgres import scratch_database, scratch_schema

ADMIN_KEY = "test-admin-" + secrets.token_urlsafe(24)


@pytest.fixture(scope="session")
def store_database() -> Iterator[URL]:
    """The session's own PostgreSQL database for the store; each test gets a schema in it."""
    with scratch_database("store") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every store-backed test runs twice: on SQLite in the test's folder, and on PostgreSQL
    (127.0.0.1:5432, or the server `DATABASE_URL` names) in a schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'platform.sqlite'}"
        return
    with scratch_schema(request.getfixturevalue("store_database")) as url:
        yield url


@pytest.fixture
def fake_dagster() -> Iterator[tuple[FakeDagster, str]]:
    dagster = FakeDagster()
    server = ReceiverServer(dagster.app(), port=0, name="fake Dagster").start()
    dagster.server = server
    yield dagster, server.url
    server.stop()


@dataclass
class Api:
    url: str
    http: httpx.Client  # authenticated as the admin
    dagster: FakeDagster
    store_url: str
    settings: ApiSettings

    def anonymous(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def as_key(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=10, headers={"Authorization": f"Bearer {token}"}
        )


@pytest.fixture
def api_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INTEGRATION_PLATFORM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("INTEGRATION_PLATFORM_SECRET_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("INTEGRATION_PLATFORM_ADMIN_KEY", ADMIN_KEY)
    return tmp_path / "data"


@pytest.fixture
def published_warehouse(api_environment: Path) -> Path:
    """Nothing published; the customers tests override this with `marts_warehouse.path`."""
    return api_environment / "warehouse.published.duckdb"


@pytest.fixture
def api(
    api_environment: Path,
    store_url: str,
    fake_dagster: tuple[FakeDagster, str],
    published_warehouse: Path,
) -> Iterator[Api]:
    dagster, dagster_url = fake_dagster
    published = published_warehouse
    settings = ApiSettings(
        database_url=store_url,
        dagster_url=dagster_url,
        published_warehouse=published,
    )
    server = ReceiverServer(create_app(settings), port=0, name="API server").start()
    http = httpx.Client(
        base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    yield Api(server.url, http, dagster, store_url, settings)
    http.close()
    server.stop()
