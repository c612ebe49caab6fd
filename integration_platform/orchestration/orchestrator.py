"""The one place syncs become Dagster runs: partition keys, tags, selections, launches, clients.

A sync of a client is, per source, one run of that source's raw assets over the sync's day
range (range tags; the raw assets' single-run backfill policy takes a range in one run), then
one run of the dbt assets downstream of them. Every run is tagged with the client, the sync,
the stage and (raw) the source, and a launch first looks for a run with those tags, so
launching twice never runs twice. Clients are the dynamic partitions of `clients`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from integration_platform.assets.partitions import CLIENT_TAG as ASSETS_CLIENT_TAG
from integration_platform.assets.partitions import partition_key as assets_partition_key
from integration_platform.clients.syncs import Sync
from integration_platform.logs import get_logger
from integration_platform.orchestration.dagster_graphql import (
    DagsterGraphQL,
    DagsterRefused,
)
from integration_platform.orchestration.runs import RunReader
from integration_platform.run_kinds import KIND_TAG, SYNC

CLIENT_TAG = ASSETS_CLIENT_TAG
SYNC_TAG = "integration_platform/sync_id"
SOURCE_TAG = "integration_platform/source"
STAGE_TAG = "integration_platform/stage"
RAW_STAGE, TRANSFORM_STAGE = "raw", "transform"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"
PART_TAG = "integration_platform/raw_part"
CLIENTS_PARTITIONS = "clients"

_log = get_logger("integration_platform.orchestration")


def partition_key(client_id: str, day: date) -> str:
    """The partition of one client's day (`acme|2025-03-01`, the raw assets' client x day)."""
    return assets_partition_key(client_id, day.isoformat())


REFERENCE_PART = "reference"


ASSET_GRAPH_QUERY = """
query AssetGraph {
  assetNodes {
    assetKey { path } opName isPartitioned isMaterializable jobNames
    partitionDefinition { type }
    dependencyKeys { path }
    repository { name location { name } }
  }
}
"""
LAUNCH_MUTATION = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidStepError { invalidStepKey }
    ... on Error { message }
  }
}
"""
ADD_PARTITION_MUTATION = """
mutation AddClient($selector: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: $name,
                      partitionKey: $key) {
    __typename
    ... on Error { message }
  }
}
"""
REPOSITORIES_QUERY = """
query Repositories { repositoriesOrError { __typename
  ... on RepositoryConnection { nodes { name location { name } } }
  ... on Error { message } } }
"""

AssetKey = tuple[str, ...]


@dataclass(frozen=True)
class AssetNode:
    key: AssetKey
    op_name: str | None
    partitioned: bool
    materializable: bool
    # Dagster's partition definition type: MULTIPARTITIONED (client x day), DYNAMIC (client).
    partition_type: str | None
    job: str | None
    dependencies: tuple[AssetKey, ...]
    repository: str
    location: str

    @property
    def raw_source(self) -> str | None:
        """`crm` for `raw/crm/contacts`; None for anything that is not a raw asset."""
        return self.key[1] if len(self.key) == 3 and self.key[0] == "raw" else None


class Orchestrator:
    def __init__(self, graphql: DagsterGraphQL, *, graph_ttl_seconds: float = 60.0) -> None:
        self.graphql = graphql
        self.reader = RunReader(graphql)
        self._graph: dict[AssetKey, AssetNode] = {}
        self._graph_loaded_at = float("-inf")
        self._graph_ttl = graph_ttl_seconds

    # -- the asset graph ----------------------------------------------------------------------

    def asset_graph(self) -> dict[AssetKey, AssetNode]:
        """Dagster's assets (cached for a minute: the code location rarely reloads)."""
        if time.monotonic() - self._graph_loaded_at > self._graph_ttl:
            nodes = self.graphql.execute(ASSET_GRAPH_QUERY)["assetNodes"]
            self._graph = {node.key: node for node in map(_asset_node, nodes)}
            self._graph_loaded_at = time.monotonic()
        return self._graph

    def raw_assets(self, source: str) -> list[AssetNode]:
        return sorted(
            (n for n in self.asset_graph().values() if n.raw_source == source and n.materializable),
            key=lambda n: n.key,
        )

    def transform_selection(self, raw_keys: set[AssetKey]) -> list[AssetNode]:
        """What runs after these raw assets: every asset downstream of them, plus what those
        read that no raw asset feeds (dbt seeds), so a fresh warehouse builds as well."""
        graph = self.asset_graph()
        children: dict[AssetKey, list[AssetKey]] = {}
        for node in graph.values():
            for parent in node.dependencies:
                children.setdefault(parent, []).append(node.key)
        downstream = _closure(raw_keys, lambda key: children.get(key, [])) - raw_keys

        def parents(key: AssetKey) -> tuple[AssetKey, ...]:
            return graph[key].dependencies if key in graph else ()

        static = {
            key
            for key in _closure(downstream, parents) - downstream
            if key in graph
            and graph[key].raw_source is None
            and not any(graph[k].raw_source for k in _closure({key}, parents) if k in graph)
        }
        return sorted(
            (graph[k] for k in downstream | static if k in graph and graph[k].materializable),
            key=lambda n: n.key,
        )

    # -- clients ------------------------------------------------------------------------------

    def register_client(self, client_id: str) -> bool:
        """Add the client as a partition of `clients`; True once Dagster knows it.

        Through GraphQL when the code location declares `clients`; until it does (tenancy in
        the assets comes later), straight into the local Dagster instance when DAGSTER_HOME
        is set, so the partition is there when the definition arrives. False: not yet.
        """
        repositories = self.graphql.execute(REPOSITORIES_QUERY)["repositoriesOrError"]
        if repositories["__typename"] != "RepositoryConnection":
            raise DagsterRefused(
                f"Dagster could not list repositories: {repositories.get('message')}"
            )
        for repository in repositories["nodes"]:
            result = self.graphql.execute(
                ADD_PARTITION_MUTATION,
                {
                    "selector": {
                        "repositoryName": repository["name"],
                        "repositoryLocationName": repository["location"]["name"],
                    },
                    "name": CLIENTS_PARTITIONS,
                    "key": client_id,
                },
            )["addDynamicPartition"]
            if result["__typename"] in (
                "AddDynamicPartitionSuccess",
                "DuplicateDynamicPartitionError",
            ):
                return True
        return _add_to_local_instance(client_id)

    # -- launching ----------------------------------------------------------------------------

    def raw_parts(self, source: str) -> dict[str, list[AssetNode]]:
        """The runs a source's raw assets take for one client, by name: its daily endpoints
        over the sync's days (`crm`), its reference endpoints, partitioned by client alone
        (`crm:reference`). Each is one run: a run has one kind of partition."""
        assets = self.raw_assets(source)
        if not assets:
            raise DagsterRefused(
                f"Dagster has no raw assets for source {source!r}: is the "
                "code location loaded with this source's spec?"
            )
        daily = [a for a in assets if a.partition_type == "MULTIPARTITIONED"]
        reference = [a for a in assets if a.partition_type != "MULTIPARTITIONED"]
        parts = {source: daily, f"{source}:{REFERENCE_PART}": reference}
        return {name: part for name, part in parts.items() if part}

    def launch_raw(self, sync: Sync, part: str) -> str:
        """The run of one raw part (see `raw_parts`) for this sync (launched now, or found
        launched)."""
        source = part.split(":", 1)[0]
        tags = {**self._sync_tags(sync, RAW_STAGE), SOURCE_TAG: source, PART_TAG: part}
        existing = self.reader.latest(tags)
        if existing is not None:
            return existing.run_id
        assets = self.raw_parts(source).get(part)
        if not assets:
            raise DagsterRefused(f"Dagster has no raw assets for {part!r}")
        if part == source:  # client x day: the sync's days, for this client
            tags[RANGE_START_TAG] = partition_key(sync.client_id, sync.start_date)
            tags[RANGE_END_TAG] = partition_key(sync.client_id, sync.end_date)
        elif all(a.partitioned for a in assets):  # by client alone
            tags[PARTITION_TAG] = sync.client_id
        config: dict[str, Any] = {}
        if sync.full_refresh:
            config = {
                "ops": {a.op_name: {"config": {"full_refresh": True}} for a in assets if a.op_name}
            }
        return self._launch(assets, tags, config)

    def launch_transform(self, sync: Sync) -> str | None:
        """The run of the dbt assets downstream of the sync's raw assets (None: there are none)."""
        tags = self._sync_tags(sync, TRANSFORM_STAGE)
        existing = self.reader.latest(tags)
        if existing is not None:
            return existing.run_id
        raw_keys = {a.key for source in sync.sources for a in self.raw_assets(source)}
        selection = self.transform_selection(raw_keys)
        if not selection:
            return None
        return self._launch(selection, tags, {})

    @staticmethod
    def _sync_tags(sync: Sync, stage: str) -> dict[str, str]:
        return {CLIENT_TAG: sync.client_id, SYNC_TAG: sync.id, STAGE_TAG: stage, KIND_TAG: SYNC}

    def _launch(self, assets: list[AssetNode], tags: dict[str, str], config: dict[str, Any]) -> str:
        first = assets[0]
        jobs = [j for j in (first.job,) if j]
        if not jobs:
            raise DagsterRefused(f"Dagster has no asset job for {'/'.join(first.key)}")
        params = {
            "selector": {
                "repositoryLocationName": first.location,
                "repositoryName": first.repository,
                "jobName": jobs[0],
                "assetSelection": [{"path": list(a.key)} for a in assets],
            },
            "runConfigData": config,
            "executionMetadata": {
                "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())]
            },
        }
        result = self.graphql.execute(LAUNCH_MUTATION, {"params": params})["launchRun"]
        if result["__typename"] == "LaunchRunSuccess":
            run_id: str = result["run"]["runId"]
            _log.info(
                "run_launched",
                run_id=run_id,
                assets=len(assets),
                client_id=tags.get(CLIENT_TAG),
                sync_id=tags.get(SYNC_TAG),
                stage=tags.get(STAGE_TAG),
                source=tags.get(SOURCE_TAG),
            )
            return run_id
        detail = (
            result.get("message")
            or "; ".join(e["message"] for e in result.get("errors") or [])
            or result.get("invalidStepKey")
            or ""
        )
        raise DagsterRefused(f"Dagster did not launch the run ({result['__typename']}): {detail}")


def _closure(start: set[AssetKey], step: Callable[[AssetKey], Iterable[AssetKey]]) -> set[AssetKey]:
    """`start` and everything reachable from it through `step` (children or parents)."""
    found = set(start)
    frontier = list(start)
    while frontier:
        for key in step(frontier.pop()):
            if key not in found:
                found.add(key)
                frontier.append(key)
    return found


def _asset_node(node: dict[str, Any]) -> AssetNode:
    jobs = [j for j in node.get("jobNames") or [] if j.startswith("__ASSET_JOB")]
    return AssetNode(
        key=tuple(node["assetKey"]["path"]),
        op_name=node.get("opName"),
        partitioned=bool(node.get("isPartitioned")),
        partition_type=(node.get("partitionDefinition") or {}).get("type"),
        materializable=bool(node.get("isMaterializable")),
        job=jobs[0] if jobs else None,
        dependencies=tuple(tuple(d["path"]) for d in node.get("dependencyKeys") or []),
        repository=node["repository"]["name"],
        location=node["repository"]["location"]["name"],
    )


def _add_to_local_instance(client_id: str) -> bool:
    import os

    if not os.environ.get("DAGSTER_HOME"):
        return False
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        if not instance.has_dynamic_partition(CLIENTS_PARTITIONS, client_id):
            instance.add_dynamic_partitions(CLIENTS_PARTITIONS, [client_id])
    return True
