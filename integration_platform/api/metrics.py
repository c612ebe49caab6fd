"""Prometheus metrics of one API app: request latency by route, sync requests and outcomes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from integration_platform.clients.syncs import Sync

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SYNC_BUCKETS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600)


class ApiMetrics:
    def __init__(self) -> None:
        # A registry per app: tests and benchmarks build several apps in one process.
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram(
            "integration_platform_api_request_duration_seconds",
            "API request latency by route template, method and status code.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.sync_requests = Counter(
            "integration_platform_sync_requests_total",
            "Sync requests by result: created, idempotent_replay, already_running, rejected.",
            ["result"],
            registry=self.registry,
        )
        self.syncs_finished = Counter(
            "integration_platform_syncs_finished_total",
            "Syncs that ended, by outcome (succeeded, failed).",
            ["outcome"],
            registry=self.registry,
        )
        self.sync_seconds = Histogram(
            "integration_platform_sync_duration_seconds",
            "Seconds from a sync's request to its end, by outcome.",
            ["outcome"],
            buckets=SYNC_BUCKETS,
            registry=self.registry,
        )

    def sync_finished(self, sync: Sync) -> None:
        self.syncs_finished.labels(sync.state).inc()
        if sync.finished_at is not None:
            self.sync_seconds.labels(sync.state).observe(
                (sync.finished_at - sync.created_at).total_seconds()
            )

    def render(self) -> bytes:
        return generate_latest(self.registry)
