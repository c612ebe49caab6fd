"""Secrets stay hidden in every encoding, wherever a raw asset's run writes: Dagster's event log
(step failures and their causes), the alert a failed run posts, the warehouse's failed-request
log and the request URL of each raw row. And a source where nothing answers fails at once.

Real parts: an API on loopback that echoes requests back (tests/echo_api.py), Dagster's
`materialize()`, a DuckDB file, and the alert sensor posting to a receiver on loopback.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from dagster import DagsterEventType, build_run_status_sensor_context, materialize
from dagster._serdes import serialize_value

from integration_platform import logs
from integration_platform.assets.raw import raw_assets
from integration_platform.automation.alerts import AlertWebhookResource, build_alert_sensor
from integration_platform.redaction import Scrubber
from integration_platform.specs.loader import load_specs
from tests.demo_partitions import demo_partition
from tests.echo_api import ECHO_SECRETS, ECHO_SPEC, EchoAPI, leaked_forms
from tests.integration.test_automation import Receiver
from tests.integration.test_raw_layer import Platform, failure_messages
from tests.ports import closed_port


@pytest.fixture
def echo_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Platform:
    """The echo source's raw asset on its own data dir, aimed at BASE_URL (set per test)."""
    for name, value in ECHO_SECRETS.items():
        monkeypatch.setenv(name, value)
    spec = tmp_path / "echo.yaml"
    spec.write_text(ECHO_SPEC.replace("BASE", "${ECHO_BASE_URL}"))
    return Platform(tmp_path / "data", load_specs([spec]))


def test_no_form_of_a_secret_reaches_dagster_the_alert_or_the_warehouse_when_the_api_echoes_it(
    echo_platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = echo_platform
    with EchoAPI(status=401) as api:
        monkeypatch.setenv("ECHO_BASE_URL", api.url)
        result = raw.materialize([raw.asset("echo", "customers")])
    assert leaked_forms(api.requests[0]), "the API should have seen the secrets, encoded"
    assert not result.success
    failure = failure_messages(result)
    assert "HTTP 401" in failure and "/v1/tenants/***/customers" in failure, failure
    assert "Authorization: Basic ***" in failure, failure
    # Everything the run wrote into Dagster's event log: step failures with their causes and
    # stack traces, metadata, log messages.
    events = [serialize_value(entry) for entry in raw.instance.all_logs(result.run_id)]
    assert events and not leaked_forms("\n".join(events))
    [failed] = raw.query("SELECT request || ' ' || error FROM raw._failed_requests")
    assert "HTTP 401" in failed[0] and not leaked_forms(failed[0]), failed[0]

    # The alert sensor runs in Dagster's daemon, which never resolved this spec: the step
    # failure it quotes must be clean by itself, whatever secrets the daemon knows.
    monkeypatch.setattr(logs, "_secrets", Scrubber())
    with Receiver() as receiver:
        context = build_run_status_sensor_context(
            sensor_name="alert_on_run_failure",
            dagster_instance=raw.instance,
            dagster_run=result.dagster_run,
            dagster_event=result.get_run_failure_event(),
            resources={"alerts": AlertWebhookResource(url=receiver.url)},
        ).for_run_failure()
        build_alert_sensor()(context)
    [alert] = receiver.received
    assert "HTTP 401" in alert["text"] and "HTTP 401" in alert["error"], alert
    assert not leaked_forms(alert["text"] + alert["error"]), alert


def test_raw_rows_name_their_request_with_the_interpolated_secrets_masked_when_they_load(
    echo_platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = echo_platform
    with EchoAPI(status=200) as api:
        monkeypatch.setenv("ECHO_BASE_URL", api.url)
        result = raw.materialize([raw.asset("echo", "customers")])
    assert result.success, failure_messages(result)
    [(url,)] = raw.query('SELECT _request_url FROM raw."echo__customers"')
    assert url == f"{api.url}/v1/tenants/***/customers?api_key=***&ref=***", url


def test_raw_asset_fails_in_seconds_without_a_step_retry_when_nothing_answers_at_the_source(
    echo_platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The asset as definitions build it, with Dagster's step retries: none is spent on a
    source that refuses connections."""
    raw = echo_platform
    url = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("ECHO_BASE_URL", url)
    [asset] = raw_assets(raw.specs)  # RAW_RETRY_POLICY: two step retries, 5 s apart and up
    assert asset.op.retry_policy is not None and asset.op.retry_policy.max_retries == 2
    started = time.monotonic()
    result = materialize(
        [asset],
        partition_key=demo_partition(None),
        resources=raw.resources,
        instance=raw.instance,
        raise_on_error=False,
    )
    elapsed = time.monotonic() - started
    assert not result.success
    # One quick second try, then the failure (the old policy spent about a minute here).
    assert elapsed < 30, f"took {elapsed:.1f} s"
    kinds = {event.event_type for event in result.all_events}
    assert DagsterEventType.STEP_UP_FOR_RETRY not in kinds, "Dagster retried the step"
    [event] = result.get_step_failure_events()
    description = event.event_specific_data.user_failure_data.description  # type: ignore[union-attr]
    assert description == (
        f"echo.customers [{demo_partition(None)}]: echo: nothing answers at {url} "
        "(connection refused, 2 attempts); if this is the sandbox, is it up? (`make sandbox`)"
    )
    [(attempts, request)] = raw.query("SELECT attempts, request FROM raw._failed_requests")
    assert attempts == 2 and request.startswith(f"echo: GET {url}/v1/tenants/***/"), request
