"""How raw assets are partitioned: by client (a Dagster dynamic partition) and, for endpoints
with daily windows, by UTC day as well (`<client>|<YYYY-MM-DD>`).

Registering a client adds it to the `clients` dynamic partitions (the API does, and `make
run` does for the demo client); every partitioned raw asset then has its days for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster import (
    DagsterInstance,
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    PartitionsDefinition,
)

from integration_platform.client_ids import is_client_id
from integration_platform.specs.models import EndpointSpec

CLIENTS_PARTITIONS = "clients"
CLIENT_DIMENSION, DATE_DIMENSION = "client", "date"
CLIENTS = DynamicPartitionsDefinition(name=CLIENTS_PARTITIONS)
# Every run for one client carries its id in this tag (schedules, the API's syncs).
CLIENT_TAG = "integration_platform/client_id"
# Dagster's own tags for a run's partition, or its range of partitions (one run of a backfill
# policy that takes ranges); Dagster defines them only in a private module.
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def partitions_for(endpoint: EndpointSpec) -> PartitionsDefinition:
    """(client x day) for an endpoint with daily windows; client alone for reference data."""
    if not endpoint.is_partitioned:
        return CLIENTS
    window = endpoint.partitions
    assert window.start is not None
    end = window.end.isoformat() if window.end else None
    return MultiPartitionsDefinition(
        {
            CLIENT_DIMENSION: CLIENTS,
            DATE_DIMENSION: DailyPartitionsDefinition(
                start_date=window.start.isoformat(), end_date=end, timezone="UTC"
            ),
        }
    )


@dataclass(frozen=True)
class ClientPartition:
    """One partition of a raw asset: whose data, and which UTC day (None: the whole set)."""

    client_id: str
    day: str | None

    def __str__(self) -> str:
        return self.key

    @property
    def key(self) -> str:
        """The Dagster partition key."""
        return partition_key(self.client_id, self.day)


def partition_key(client_id: str, day: str | None) -> str:
    """`acme|2025-03-01` (client x day), or `acme` for an asset partitioned by client only."""
    if day is None:
        return client_id
    return str(MultiPartitionKey({CLIENT_DIMENSION: client_id, DATE_DIMENSION: day}))


def parse_partition_key(key: str) -> ClientPartition:
    """The client and day of a raw asset's partition key (see `partition_key`)."""
    client_id, _, day = key.partition("|")
    if not is_client_id(client_id):
        raise ValueError(f"partition key {key!r} does not start with a client id")
    return ClientPartition(client_id, day or None)


def register_clients(instance: DagsterInstance, *client_ids: str) -> list[str]:
    """Add clients to the `clients` dynamic partitions (those not there yet); returns them."""
    known = set(instance.get_dynamic_partitions(CLIENTS_PARTITIONS))
    new = [client for client in client_ids if client not in known]
    if new:
        instance.add_dynamic_partitions(CLIENTS_PARTITIONS, new)
    return new
