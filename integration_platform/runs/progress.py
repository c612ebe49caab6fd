"""What a headless run prints: one line per asset partition as it lands, and a summary table.

A Dagster logger (given to the run in place of the console logger, whose DEBUG flood is what a
newcomer saw) receives every event of the run as it happens, in this process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dagster import DagsterEvent, InitLoggerContext, LoggerDefinition

Echo = Callable[[str], None]


@dataclass
class AssetLine:
    """What the summary table says of one asset."""

    partitions: int = 0
    rows: int | None = None  # None: the asset reports no row count (dbt models)
    checks_failed: list[str] = field(default_factory=list)


class Progress(logging.Handler):
    """Turns the events of runs into progress lines and keeps the figures for the summary."""

    def __init__(self, echo: Echo) -> None:
        super().__init__(level=logging.DEBUG)
        self.echo = echo
        self.assets: dict[str, AssetLine] = {}
        self.check_results: dict[tuple[str, str], tuple[bool, dict[str, Any]]] = {}
        self.failures: list[tuple[str, str]] = []  # (step, what went wrong)
        self.started = time.monotonic()

    def logger_definition(self) -> LoggerDefinition:
        handler = self

        def progress(_: InitLoggerContext) -> logging.Logger:
            log = logging.Logger("integration_platform.progress", level=logging.DEBUG)
            log.addHandler(handler)
            return log

        return LoggerDefinition(progress, description="progress lines for the command line")

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event: DagsterEvent | None = meta.get("dagster_event")
        if event is None:
            return
        kind = event.event_type_value
        if kind == "ASSET_MATERIALIZATION":
            self._materialized(event)
        elif kind == "ASSET_CHECK_EVALUATION":
            self._checked(event)
        elif kind == "STEP_FAILURE":
            self._failed(event)

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.started:6.1f}s"

    def _materialized(self, event: DagsterEvent) -> None:
        materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
        key = materialization.asset_key.to_user_string()
        metadata = {k: v.value for k, v in materialization.metadata.items()}
        partition = materialization.partition
        rows = metadata.get("rows_loaded", metadata.get("dagster/row_count"))
        per_partition = metadata.get("rows_per_partition")
        if isinstance(per_partition, dict) and partition is not None:
            rows = per_partition.get(partition, rows)
        line = self.assets.setdefault(key, AssetLine())
        line.partitions += 1
        if isinstance(rows, int):
            line.rows = (line.rows or 0) + rows
        figures = f"  {rows:>7} rows" if isinstance(rows, int) else ""
        where = f"  {partition}" if partition else ""
        self.echo(f"{self._elapsed()}  ✓ {key}{where}{figures}")

    def _checked(self, event: DagsterEvent) -> None:
        evaluation = event.event_specific_data
        key = evaluation.asset_key.to_user_string()  # type: ignore[union-attr]
        name = evaluation.check_name  # type: ignore[union-attr]
        passed = bool(evaluation.passed)  # type: ignore[union-attr]
        metadata = {k: v.value for k, v in evaluation.metadata.items()}  # type: ignore[union-attr]
        self.check_results[(key, name)] = (passed, metadata)
        if not passed:
            self.assets.setdefault(key, AssetLine()).checks_failed.append(name)
            description = evaluation.description or ""  # type: ignore[union-attr]
            self.echo(
                f"{self._elapsed()}  ! check {name} on {key} did not pass: {description}".rstrip(
                    ": "
                )
            )

    def _failed(self, event: DagsterEvent) -> None:
        error = event.event_specific_data.error  # type: ignore[union-attr]
        message = error.message.strip().splitlines()[0] if error is not None else "failed"
        data = getattr(event.event_specific_data, "user_failure_data", None)
        if data is not None and data.description:
            message = data.description
        self.failures.append((str(event.step_key), message))
        self.echo(f"{self._elapsed()}  ✗ {event.step_key}: {message}")

    def summary(self) -> list[str]:
        """The summary table, one line per asset, then the steps that failed."""
        lines = []
        if self.assets:
            width = max(len(key) for key in self.assets)
            lines += [
                f"{'asset':<{width}}  partitions       rows  checks",
                f"{'-' * width}  ----------  ---------  ------",
            ]
            for key, line in sorted(self.assets.items()):
                checks = f"failed: {', '.join(line.checks_failed)}" if line.checks_failed else "ok"
                rows = "-" if line.rows is None else str(line.rows)
                lines.append(f"{key:<{width}}  {line.partitions:>10}  {rows:>9}  {checks}")
        else:
            lines.append("nothing was materialized")
        lines += [f"failed: {step}: {message}" for step, message in self.failures]
        return lines
