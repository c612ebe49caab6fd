"""Schedules come from the specs and fill the day that ended; failed runs post an alert."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from io import StringIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from dagster import (
    DagsterInstance,
    Definitions,
    RunRequest,
    SkipReason,
    build_run_status_sensor_context,
    build_schedule_context,
    instance_for_test,
    job,
    op,
)

from integration_platform.assets.partitions import CLIENT_TAG, register_clients
from integration_platform.automation.alerts import AlertWebhookResource, build_alert_sensor
from integration_platform.automation.schedules import source_automation
from integration_platform.environment import PROJECT_ROOT
from integration_platform.logs import configure_logging
from integration_platform.specs.loader import load_specs


class Receiver:
    """A real HTTP server on loopback that records the alerts posted to it."""

    def __init__(self, fail_first: int = 0) -> None:
        self.received: list[dict[str, Any]] = []
        self.fail_first = fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if outer.fail_first > 0:
                    outer.fail_first -= 1
                    self.send_response(503)
                else:
                    outer.received.append(json.loads(body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()


@pytest.fixture
def failed_run() -> Iterator[tuple[DagsterInstance, Any]]:
    @op
    def fetch_partition() -> None:
        raise RuntimeError("billing answered 503 five times in a row")

    @job
    def billing_daily_demo() -> None:
        fetch_partition()

    with DagsterInstance.ephemeral() as instance:
        result = billing_daily_demo.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        yield instance, result


def test_every_scheduled_source_gets_a_daily_schedule_when_specs_declare_a_cron() -> None:
    jobs, schedules = source_automation(load_specs())
    names = {s.name for s in schedules}
    assert {
        "crm_daily_schedule",
        "billing_daily_schedule",
        "support_daily_schedule",
        "analytics_daily_schedule",
        "crm_reference_schedule",
    } <= names
    crm = next(s for s in schedules if s.name == "crm_daily_schedule")
    assert crm.cron_schedule == "15 2 * * *"
    assert crm.execution_timezone == "UTC"
    assert "crm_daily" in {j.name for j in jobs}


def test_schedule_fills_the_day_that_just_ended_for_each_client_when_it_ticks(
    platform_defs: Definitions,
) -> None:
    repository = platform_defs.get_repository_def()
    billing = repository.get_schedule_def("billing_daily_schedule")
    tick = datetime(2025, 3, 8, 2, 30, tzinfo=UTC)
    with instance_for_test() as instance:  # schedules need a persistent instance
        register_clients(instance, "demo", "acme")
        with build_schedule_context(
            instance=instance, scheduled_execution_time=tick, repository_def=repository
        ) as context:
            requests = list(billing.evaluate_tick(context).run_requests or [])
    assert all(isinstance(r, RunRequest) for r in requests)
    assert sorted((r.partition_key, r.tags[CLIENT_TAG]) for r in requests) == [
        ("acme|2025-03-07", "acme"),
        ("demo|2025-03-07", "demo"),
    ]


# `name` sensor|schedule|job, sensor|schedule|job (`name`, `job:name` (the Runs filter) and
# `..._sensor` / `..._schedule`; `<source>` stands for any source.
README_NAMES = (
    re.compile(r"`(?P<name>[\w<>]+)`\s+(?P<kind>sensor|schedule|job)\b"),
    re.compile(r"\b(?P<kind>sensor|schedule|job)\s+\(?`(?P<name>[\w<>]+)`"),
    re.compile(r"`(?P<kind>job):(?P<name>[\w<>]+)`"),
    re.compile(r"`(?P<name>[\w<>]+_(?P<kind>sensor|schedule))`"),
)


def test_every_sensor_schedule_and_job_the_readme_names_exists_when_the_definitions_load(
    platform_defs: Definitions,
) -> None:
    specs = load_specs()
    repository = platform_defs.get_repository_def()
    defined = {
        "sensor": {s.name for s in repository.sensor_defs},
        "schedule": {s.name for s in repository.schedule_defs},
        "job": {j.name for j in repository.get_all_jobs()},
    }
    readme = " ".join((PROJECT_ROOT / "README.md").read_text().split())  # lines joined
    mentioned = {
        (m["kind"], m["name"]) for pattern in README_NAMES for m in pattern.finditer(readme)
    }
    assert {("sensor", "webhook_inbox_sensor"), ("job", "drain_webhooks")} <= mentioned
    missing = [
        f"the {kind} `{name}`"
        for kind, name in sorted(mentioned)
        if not {name.replace("<source>", source) for source in specs} & defined[kind]
    ]
    assert not missing, f"README.md names {', '.join(missing)}; the UI has {defined}"


def test_schedule_skips_when_the_day_is_before_the_first_partition_or_no_client_exists() -> None:
    from integration_platform.automation.schedules import last_complete_day

    early = last_complete_day(
        "crm", datetime(2025, 1, 1, 2, 15, tzinfo=UTC), datetime(2025, 1, 1).date(), ["demo"]
    )
    assert isinstance(early, SkipReason)
    nobody = last_complete_day(
        "crm", datetime(2025, 3, 8, 2, 15, tzinfo=UTC), datetime(2025, 1, 1).date(), []
    )
    assert isinstance(nobody, SkipReason) and "no client" in str(nobody.skip_message)


def test_failed_run_posts_an_alert_naming_the_job_and_error_when_a_url_is_set(
    failed_run: tuple[DagsterInstance, Any],
) -> None:
    instance, result = failed_run
    with Receiver(fail_first=1) as receiver:
        context = build_run_status_sensor_context(
            sensor_name="alert_on_run_failure",
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            dagster_event=result.get_run_failure_event(),
            resources={"alerts": AlertWebhookResource(url=receiver.url)},
        ).for_run_failure()
        build_alert_sensor()(context)
    assert len(receiver.received) == 1, "one alert, delivered after one retry"
    alert = receiver.received[0]
    assert alert["job"] == "billing_daily_demo"
    assert alert["run_id"] == result.run_id
    assert "503 five times" in alert["error"]


def test_no_alert_is_posted_and_nothing_fails_when_no_url_is_configured(
    failed_run: tuple[DagsterInstance, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    instance, result = failed_run
    # Every request httpx sends, whatever client sends it, passes its transport: record them.
    requests: list[httpx.Request] = []
    send = httpx.HTTPTransport.handle_request

    def recording(transport: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return send(transport, request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", recording)
    stream = StringIO()
    configure_logging("INFO", stream=stream)
    try:
        context = build_run_status_sensor_context(
            sensor_name="alert_on_run_failure",
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            dagster_event=result.get_run_failure_event(),
            resources={"alerts": AlertWebhookResource(url="")},
        ).for_run_failure()
        build_alert_sensor()(context)  # raises if anything fails
    finally:
        configure_logging()
    assert requests == [], [str(r.url) for r in requests]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [warning] = [line for line in lines if line["event"] == "alert_not_sent"]
    assert warning["level"] == "warning"
    assert warning["reason"] == "ALERT_WEBHOOK_URL is not set"
    assert warning["run_id"] == result.run_id and warning["job"] == "billing_daily_demo"
    assert not [line for line in lines if line["event"] == "alert_sent"]


def test_the_demo_client_has_partitions_when_the_launcher_prepares_dagster_home(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from integration_platform.assets.partitions import CLIENTS_PARTITIONS
    from integration_platform.orchestration.instance import prepare_dagster_home

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    for _ in range(2):  # every start registers it, once
        home = prepare_dagster_home()
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_dynamic_partitions(CLIENTS_PARTITIONS) == ["demo"]
