"""Partition keys as time windows, and those windows as request parameters."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from integration_platform.specs.models import EndpointSpec, PartitionSpec

# The partition key of an endpoint that is not partitioned, wherever a key names something
# (incremental marks, landing folders, the raw tables' partition column).
UNPARTITIONED = "__all__"


class PartitionKeyError(ValueError):
    """A partition key that does not name a day the endpoint is partitioned by."""


@dataclass(frozen=True)
class Window:
    """[start, end) in UTC."""

    start: datetime
    end: datetime


def daily_window(partition_key: str) -> Window:
    try:
        day = date.fromisoformat(partition_key)
    except ValueError:
        raise PartitionKeyError(
            f"partition {partition_key!r} is not a day: daily partitions are YYYY-MM-DD"
        ) from None
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return Window(start, start + timedelta(days=1))


def check_partition_key(name: str, endpoint: EndpointSpec, partition_key: str | None) -> None:
    """PartitionKeyError unless `partition_key` fits the endpoint: a day if it is partitioned
    by day, none if it is not. Cheap: call it before anything is named after the key."""
    if partition_key is None:
        return
    if not endpoint.is_partitioned:
        raise PartitionKeyError(f"{name} is not partitioned: run it without a partition")
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", partition_key):
        shown = partition_key if len(partition_key) <= 40 else partition_key[:40] + "..."
        raise PartitionKeyError(
            f"partition {shown!r} is not a day: daily partitions are YYYY-MM-DD"
        )
    daily_window(partition_key)  # a real date (not 2025-02-30)


def format_instant(moment: datetime, style: str) -> str | int:
    if style == "epoch":
        return int(moment.timestamp())
    if style == "date":
        return moment.date().isoformat()
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def window_params(spec: PartitionSpec, window: Window) -> dict[str, str | int]:
    params: dict[str, str | int] = {}
    if spec.start_param:
        params[spec.start_param] = format_instant(window.start, spec.format)
    if spec.end_param:
        params[spec.end_param] = format_instant(window.end, spec.format)
    return params


def parse_instant(value: object) -> datetime | None:
    """A cursor value as a UTC instant: ISO 8601 with any offset, or epoch (s or ms)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.replace(".", "", 1).isdigit():
            return parse_instant(float(text))
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None
