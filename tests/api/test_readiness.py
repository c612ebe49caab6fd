"""`/health/ready` in the production instance profile also asks Dagster's storage database
(this machine's PostgreSQL) whether it answers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import URL

from integration_platform.api.app import create_app
from integration_platform.api.settings import ApiSettings
from integration_platform.celery_workers import (
    BROKER_URL_VARIABLE,
    BrokerUnreachableError,
    check_broker,
)
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


RABBITMQ = "127.0.0.1:5672"


def test_ready_says_whether_the_celery_broker_answers_when_runs_go_to_workers(
    api_environment: Path,
    fake_dagster: tuple[FakeDagster, str],
    published_warehouse: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    try:
        check_broker(f"amqp://guest:guest@{RABBITMQ}//", timeout=5)
    except BrokerUnreachableError as exc:
        pytest.fail(f"RabbitMQ at {RABBITMQ} (guest/guest) must answer for this test: {exc}")
    monkeypatch.setenv(BROKER_URL_VARIABLE, f"amqp://guest:guest@{RABBITMQ}//")
    _, dagster_url = fake_dagster
    settings = ApiSettings.from_environment()
    assert settings.celery_broker_url is not None
    with serving(replace(settings, dagster_url=dagster_url)) as http:
        ready = http.get("/health/ready")
    assert ready.status_code == 200, ready.text
    check = ready.json()["checks"]["celery_broker"]
    assert check == {"ok": True, "detail": f"the celery broker at {RABBITMQ} answers"}

    down = f"amqp://guest:not-shown-anywhere@127.0.0.1:{closed_port()}//"
    with serving(replace(settings, dagster_url=dagster_url, celery_broker_url=down)) as http:
        started = time.monotonic()
        ready = http.get("/health/ready")
        took = time.monotonic() - started
    assert ready.status_code == 503
    body = ready.json()
    assert body["checks"]["celery_broker"]["ok"] is False
    assert (
        f"127.0.0.1:{down.split(':')[-1][:-2]} does not answer"
        in body["checks"]["celery_broker"]["detail"]
    )
    assert body["checks"]["store"]["ok"] is True
    assert "not-shown-anywhere" not in ready.text and "guest" not in ready.text
    assert took < 15, f"the broker check took {took:.1f} s"


def test_ready_has_no_broker_check_when_steps_run_in_the_runs_processes(
    api_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(BROKER_URL_VARIABLE, raising=False)
    assert ApiSettings.from_environment().celery_broker_url is None
