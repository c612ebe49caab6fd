"""One status line per process and interval: what the process did since the last line, counted
from its log lines or from a cheap query (the inbox, the Dagster instance, the sandbox)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from integration_platform.console.log_lines import LogLine
from integration_platform.run_kinds import AUTOMATION, KIND_TAG
from integration_platform.webhooks.inbox import Inbox


class Probe(Protocol):
    def observe(self, line: LogLine) -> None:
        """Every line the process logs, as it is read."""

    def report(self) -> str:
        """What happened since the last report (and start counting afresh)."""

    def news(self) -> str | None:
        """A line worth printing at once (checked about every second), if any."""


def count(value: int, singular: str, plural: str | None = None) -> str:
    return f"{value:,} {singular if value == 1 else plural or singular + 's'}"


class LineProbe:
    """Any process: how many lines it logged."""

    def __init__(self) -> None:
        self.lines = 0

    def observe(self, line: LogLine) -> None:
        self.lines += 1

    def report(self) -> str:
        lines, self.lines = self.lines, 0
        return f"running, {count(lines, 'log line')}"

    def news(self) -> str | None:
        return None


class StreamsProbe(LineProbe):
    """The stream consumer: events loaded into raw, from its `partition_loaded` lines."""

    def __init__(self) -> None:
        super().__init__()
        self.events = self.rows = self.loads = self.dead_letters = 0
        self.last_event_id: str | None = None

    def observe(self, line: LogLine) -> None:
        if line.event == "partition_loaded":
            self.loads += 1
            self.events += int(line.fields.get("records") or 0)
            self.rows += int(line.fields.get("rows") or 0)
            self.dead_letters += int(line.fields.get("dead_letters") or 0)
        elif line.event == "stream_progress":
            self.last_event_id = line.fields.get("last_event_id") or self.last_event_id

    def report(self) -> str:
        text = (
            f"{count(self.events, 'event')} loaded into raw ({count(self.rows, 'row')}, "
            f"{count(self.loads, 'load')}"
        )
        text += f", {count(self.dead_letters, 'dead letter')})" if self.dead_letters else ")"
        if self.last_event_id:
            text += f"; last event id {self.last_event_id}"
        self.events = self.rows = self.loads = self.dead_letters = 0
        return text


class ApiProbe(LineProbe):
    """The API: requests served, from its `api_request` lines."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = self.refused = self.failed = 0

    def observe(self, line: LogLine) -> None:
        if line.event == "api_request":
            self.requests += 1
            status = int(line.fields.get("status") or 0)
            self.refused += 400 <= status < 500
            self.failed += status >= 500

    def report(self) -> str:
        text = (
            f"{count(self.requests, 'request')} ({self.refused:,} refused with 4xx, "
            f"{self.failed:,} failed with 5xx)"
        )
        self.requests = self.refused = self.failed = 0
        return text


class WebhooksProbe(LineProbe):
    """The receiver: events accepted, rejected and ignored, from the inbox's counts."""

    def __init__(self, inbox_path: Path) -> None:
        super().__init__()
        self.inbox_path = inbox_path
        self.last: Mapping[str, int] = self._counts()  # what the inbox held before the start

    def _counts(self) -> dict[str, int]:
        with Inbox(self.inbox_path) as inbox:
            return inbox.counts()

    def report(self) -> str:
        now = self._counts()
        last, self.last = self.last, now
        # Pruning forgets old rows, so a difference can be negative: nothing new then.
        accepted, rejected, ignored = (
            max(now[key] - last[key], 0) for key in ("received", "rejected", "ignored")
        )
        return (
            f"{count(accepted, 'event')} accepted, {rejected:,} rejected, {ignored:,} "
            f"ignored; {count(now['undrained'], 'event')} waiting for the next drain run"
        )


class SandboxProbe(LineProbe):
    """The sandbox vendors: webhooks billing sent and events analytics streamed."""

    def __init__(self, urls: Mapping[str, str]) -> None:
        super().__init__()
        self.urls = urls
        self.last: dict[str, int] | None = None

    def _totals(self) -> dict[str, int]:
        totals = {"webhooks": 0, "webhooks_failed": 0, "streamed": 0, "chaos": 0}
        for url in self.urls.values():
            stats: dict[str, Any] = httpx.get(f"{url}/_sandbox/stats", timeout=5).json()
            webhooks = stats.get("webhooks") or {}
            totals["webhooks"] += int(webhooks.get("sent") or 0)
            totals["webhooks_failed"] += int(webhooks.get("failed") or 0)
            totals["streamed"] += int((stats.get("stream") or {}).get("events_sent") or 0)
            chaos = stats.get("chaos_injected") or {}
            totals["chaos"] += sum(v for v in chaos.values() if isinstance(v, int))
        return totals

    def report(self) -> str:
        now = self._totals()
        last = self.last or dict.fromkeys(now, 0)
        self.last = now
        new = {key: now[key] - last[key] for key in now}
        text = (
            f"{count(new['webhooks'], 'webhook')} sent ({new['webhooks_failed']:,} failed), "
            f"{count(new['streamed'], 'stream event')} sent"
        )
        return text + (f", {count(new['chaos'], 'fault')} injected" if new["chaos"] else "")


class DagsterProbe(LineProbe):
    """Dagster: runs launched, succeeded and failed, from the instance; when the UI answers."""

    def __init__(self, dagster_home: Path, ui_url: str) -> None:
        super().__init__()
        self.dagster_home = dagster_home
        self.ui_url = ui_url
        self.started = time.monotonic()
        self.since = time.time()
        self.ui_ready = False
        self._next_ui_check = 0.0

    def news(self) -> str | None:
        if self.ui_ready or time.monotonic() < self._next_ui_check:
            return None
        self._next_ui_check = time.monotonic() + 2
        try:
            self.ui_ready = httpx.get(f"{self.ui_url}/server_info", timeout=5).status_code == 200
        except httpx.TransportError:
            return None
        if not self.ui_ready:
            return None
        return f"Dagster UI ready: {self.ui_url}  (after {time.monotonic() - self.started:.0f} s)"

    def report(self) -> str:
        # Dagster (seconds to import) only once the launcher polls it, not when it starts.
        from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

        from integration_platform.automation.webhook_sensor import DRAIN_JOB, IN_FLIGHT

        since, self.since = datetime.fromtimestamp(self.since, UTC), time.time()
        with DagsterInstance.from_config(str(self.dagster_home)) as instance:
            launched = instance.get_run_records(RunsFilter(created_after=since))
            finished = instance.get_run_records(
                RunsFilter(
                    updated_after=since,
                    statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE],
                )
            )
            in_flight = instance.get_runs_count(RunsFilter(statuses=IN_FLIGHT))
        drains = sum(r.dagster_run.job_name == DRAIN_JOB for r in launched)
        builds = sum(r.dagster_run.tags.get(KIND_TAG) == AUTOMATION for r in launched)
        succeeded = sum(r.dagster_run.status == DagsterRunStatus.SUCCESS for r in finished)
        text = (
            f"{count(len(launched), 'run')} launched ({count(drains, 'webhook drain')}, "
            f"{count(builds, 'dbt build')}), "
            f"{succeeded:,} succeeded, {len(finished) - succeeded:,} failed; "
            f"{in_flight:,} queued or running"
        )
        return text if self.ui_ready else text + "; the UI is still starting"
