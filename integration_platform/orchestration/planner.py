"""The one planner of a client's runs over a day range: raw days, raw reference data, transform.

It reads a neutral asset graph (`PlanNode`), which both Dagster's in-process Definitions
(`materialize`, the demo) and the webserver's GraphQL asset graph (the API) produce, and
returns the runs with their tags; callers add their own (sync id, source) and launch them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Literal

from integration_platform.assets.partitions import CLIENT_TAG as CLIENT_TAG
from integration_platform.assets.partitions import (
    PARTITION_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    partition_key,
)
from integration_platform.run_kinds import KIND_TAG

SYNC_TAG = "integration_platform/sync_id"
SOURCE_TAG = "integration_platform/source"
STAGE_TAG = "integration_platform/stage"
PART_TAG = "integration_platform/raw_part"
RAW_STAGE, TRANSFORM_STAGE = "raw", "transform"

AssetKey = tuple[str, ...]
# How an asset is partitioned: by client x day, by client alone, or not at all.
Partitioning = Literal["client_day", "client", "none"]
RunName = Literal["raw_days", "raw_reference", "transform"]


@dataclass(frozen=True)
class PlanNode:
    key: AssetKey
    partitioning: Partitioning
    dependencies: tuple[AssetKey, ...] = ()


@dataclass(frozen=True)
class PlannedRun:
    """One run: assets that share a kind of partition, and the tags that say what it is for."""

    name: RunName
    keys: tuple[AssetKey, ...]
    tags: dict[str, str]

    @property
    def raw(self) -> bool:
        return self.name != "transform"


def plan_runs(
    nodes: Iterable[PlanNode], *, client_id: str, start: date, end: date, kind: str
) -> list[PlannedRun]:
    """The runs that materialize `nodes` (materializable assets) for a client's days, in the
    order they must run: raw days (a partition range of the client's days), raw reference
    data (partition: the client), then everything else (dbt)."""
    groups: dict[Partitioning, list[AssetKey]] = {"client_day": [], "client": [], "none": []}
    for node in sorted(nodes, key=lambda n: n.key):
        groups[node.partitioning].append(node.key)
    client = {CLIENT_TAG: client_id, KIND_TAG: kind}
    raw = {**client, STAGE_TAG: RAW_STAGE}
    runs = [
        PlannedRun(
            "raw_days",
            tuple(groups["client_day"]),
            {
                **raw,
                RANGE_START_TAG: partition_key(client_id, start.isoformat()),
                RANGE_END_TAG: partition_key(client_id, end.isoformat()),
            },
        ),
        PlannedRun("raw_reference", tuple(groups["client"]), {**raw, PARTITION_TAG: client_id}),
        PlannedRun("transform", tuple(groups["none"]), {**client, STAGE_TAG: TRANSFORM_STAGE}),
    ]
    return [run for run in runs if run.keys]


def downstream(nodes: Iterable[PlanNode], of: set[AssetKey]) -> set[AssetKey]:
    """Every asset downstream of `of` (not `of` itself)."""
    children: dict[AssetKey, list[AssetKey]] = {}
    for node in nodes:
        for parent in node.dependencies:
            children.setdefault(parent, []).append(node.key)
    found = set(of)
    frontier = list(of)
    while frontier:
        for key in children.get(frontier.pop(), []):
            if key not in found:
                found.add(key)
                frontier.append(key)
    return found - of
