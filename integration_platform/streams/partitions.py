"""Which daily partition a pushed record belongs to: the UTC day of `partitions.field`."""

from __future__ import annotations

from datetime import UTC, date
from functools import lru_cache
from typing import Any

from integration_platform.extraction.windows import parse_instant
from integration_platform.http.pagination import select
from integration_platform.specs.models import EndpointSpec


class PartitionField:
    """The record field whose UTC day is the partition, or none for unpartitioned endpoints."""

    def __init__(self, source: str, endpoint: str, config: EndpointSpec) -> None:
        self.field: str | None = None
        if config.is_partitioned:
            if config.partitions.field is None:
                raise ValueError(
                    f"{source}.{endpoint} has daily partitions but no `partitions.field`: pushed "
                    "records need the record field whose UTC day is their partition, e.g. "
                    "`partitions: {..., field: occurred_at}`"
                )
            self.field = config.partitions.field
        # A top-level field is one dict lookup; `select` (dotted paths) costs ~10x that.
        self._key = self.field if self.field and not set(self.field) & set(".[]") else None

    def partition_of(self, record: Any) -> str | None:
        """`YYYY-MM-DD`; ValueError (or ResponseShapeError) when the field is absent or no time."""
        if self.field is None:
            return None
        if self._key is not None and type(record) is dict:
            value = record.get(self._key)
        else:
            value = select(record, self.field)
        # Fast path for the common `...T...Z` (already UTC): this runs once per event.
        if type(value) is str and value[-1:] == "Z" and value[10:11] == "T" and _is_day(value[:10]):
            return value[:10]
        moment = parse_instant(value)
        if moment is None:
            raise ValueError(f"partition field {self.field!r} is {value!r}, not a timestamp")
        return moment.astimezone(UTC).date().isoformat()


@lru_cache(maxsize=4096)
def _is_day(text: str) -> bool:
    try:
        return date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False
