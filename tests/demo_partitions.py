"""Partition keys of the demo client, the one the sandbox's default tenant serves."""

from __future__ import annotations

from integration_platform.assets.partitions import partition_key
from integration_platform.client_ids import DEMO_CLIENT_ID


def demo_partition(day: str | None) -> str:
    """The demo client's partition key for a day (or its reference data)."""
    return partition_key(DEMO_CLIENT_ID, day)
