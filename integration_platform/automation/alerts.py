"""Alerting: a run-failure sensor that posts what failed to a configurable URL.

The URL comes from `ALERT_WEBHOOK_URL` (Slack-compatible incoming webhooks, or any receiver
that takes JSON). Posts are retried briefly; an unset URL logs and skips rather than failing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from dagster import (
    ConfigurableResource,
    DefaultSensorStatus,
    RunFailureSensorContext,
    SensorDefinition,
    run_failure_sensor,
)
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from integration_platform.assets.partitions import PARTITION_TAG
from integration_platform.logs import get_logger, scrub_text

_log = get_logger("integration_platform.alerts")


class AlertWebhookResource(ConfigurableResource["AlertWebhookResource"]):
    """Where alerts go; an empty URL disables them."""

    url: str = ""
    timeout_seconds: float = 10.0

    def post(self, payload: dict[str, Any]) -> bool:
        if not self.url:
            _log.warning("alert_not_sent", reason="ALERT_WEBHOOK_URL is not set", **payload)
            return False
        self._post(payload)
        return True

    @retry(
        retry=retry_if_exception_type((httpx.TransportError, httpx.HTTPStatusError)),
        stop=stop_after_attempt(3),
        wait=wait_exponential(multiplier=0.5, max=4),
        reraise=True,
    )
    def _post(self, payload: dict[str, Any]) -> None:
        response = httpx.post(self.url, json=payload, timeout=self.timeout_seconds)
        response.raise_for_status()


def failure_payload(context: RunFailureSensorContext) -> dict[str, Any]:
    run = context.dagster_run
    steps = [
        _error_chain(getattr(event.event_specific_data, "error", None))
        for event in context.get_step_failure_events()
    ]
    steps = [step for step in steps if step]
    message = "\n".join(steps) or context.failure_event.message or "run failed"
    return {
        "text": f"Run {run.run_id[:8]} of {run.job_name} failed: {scrub_text(message)[:500]}",
        "run_id": run.run_id,
        "job": run.job_name,
        "partition": run.tags.get(PARTITION_TAG),
        "error": scrub_text(message)[:4000],
        "failed_at": datetime.now(UTC).isoformat(),
    }


def _error_chain(error: Any) -> str:
    """The error and its causes, innermost last: the wrapper alone says nothing useful."""
    messages = []
    while error is not None:
        messages.append(str(error.message).strip())
        error = error.cause
    return " <- ".join(messages)


def build_alert_sensor() -> SensorDefinition:
    @run_failure_sensor(
        name="alert_on_run_failure",
        default_status=DefaultSensorStatus.RUNNING,
        monitor_all_code_locations=False,
        description="Posts every failed run to ALERT_WEBHOOK_URL.",
    )
    def alert_on_run_failure(
        context: RunFailureSensorContext, alerts: AlertWebhookResource
    ) -> None:
        payload = failure_payload(context)
        if alerts.post(payload):
            _log.info("alert_sent", run_id=payload["run_id"], job=payload["job"])

    return alert_on_run_failure
