"""The one place syncs become Dagster runs: the asset graph, clients, launches.

A sync of a client is one run of its sources' daily raw assets over the sync's day range (range
tags; the raw assets' single-run backfill policy takes a range in one run) and one of their
reference assets (partition: the client), as `planner.plan_runs` plans them: two runs, each
paying one process start and one load of the definitions, whatever the number of sources. The dbt
models are built by Dagster's automation (`automation_sensor`) once raw partitions land: nothing
here launches them. Every run is tagged with the client, the sync, the stage, the source and the
part. Clients are the dynamic partitions of `clients`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from integration_platform.assets.partitions import CLIENTS_PARTITIONS
from integration_platform.clients.syncs import Sync
from integration_platform.logs import get_logger
from integration_platform.orchestration.dagster_graphql import (
    DagsterGraphQL,
    DagsterRefused,
    DagsterUnavailable,
)
from integration_platform.orchestration.planner import (
    CLIENT_TAG,
    PART_TAG,
    SOURCE_TAG,
    STAGE_TAG,
    SYNC_TAG,
    AssetKey,
    Partitioning,
    PlanNode,
    downstream,
    plan_runs,
)
from integration_platform.orchestration.runs import RunReader
from integration_platform.run_kinds import SYNC

# A sync's runs by part: its sources' daily assets over its days, and their reference assets.
PARTS = {"raw_days": "days", "raw_reference": "reference"}
# Seconds one launch may take: with runs started at once (no queue), the webserver answers only
# once the run's process is up, which takes a while on a busy machine.
LAUNCH_TIMEOUT_SECONDS = 90.0

_log = get_logger("integration_platform.orchestration")

ASSET_GRAPH_QUERY = """
query AssetGraph {
  assetNodes {
    assetKey { path } opName isPartitioned isMaterializable jobNames kinds
    partitionDefinition { type description }
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
TERMINATE_MUTATION = """
mutation Terminate($runIds: [String!]!) {
  terminateRuns(runIds: $runIds) {
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


@dataclass(frozen=True)
class AssetNode:
    key: AssetKey
    op_name: str | None
    partitioned: bool
    materializable: bool
    # Dagster's partition definition type: MULTIPARTITIONED (client x day), DYNAMIC (client).
    partition_type: str | None
    # Dagster's description of the partitions ("Multi-partitioned, with dimensions: ..."):
    # assets with the same one can share a run.
    partitions: str | None
    job: str | None
    dependencies: tuple[AssetKey, ...]
    repository: str
    location: str
    kinds: tuple[str, ...] = ()

    @property
    def raw_source(self) -> str | None:
        """`crm` for `raw/crm/contacts`; None for anything that is not a raw asset."""
        return self.key[1] if len(self.key) == 3 and self.key[0] == "raw" else None

    @property
    def plan_node(self) -> PlanNode:
        partitioning: Partitioning = (
            "client_day"
            if self.partition_type == "MULTIPARTITIONED"
            else "client"
            if self.partitioned
            else "none"
        )
        return PlanNode(self.key, partitioning, self.dependencies)


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

    def dbt_assets_after(self, sources: list[str]) -> list[AssetNode]:
        """The dbt assets downstream of these sources' raw assets: what Dagster's automation
        builds once their partitions land."""
        graph = self.asset_graph()
        raw = {a.key for source in sources for a in self.raw_assets(source)}
        found = downstream([n.plan_node for n in graph.values()], raw)
        return sorted(
            (
                graph[k]
                for k in found
                if k in graph and graph[k].materializable and "dbt" in graph[k].kinds
            ),
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

    def launch_sync(self, sync: Sync) -> dict[str, str]:
        """Launch the sync's raw runs now: by part (`days` for its sources' daily assets over
        the sync's days, `reference` for their reference assets), the run ids. All or none: when one
        launch fails, the runs launched before it are terminated and the error raised."""
        launched: dict[str, str] = {}
        try:
            self._launch_parts(sync, launched)
        except (DagsterUnavailable, DagsterRefused):
            self._terminate(list(launched.values()))
            raise
        return launched

    def _launch_parts(self, sync: Sync, launched: dict[str, str]) -> None:
        assets: dict[AssetKey, AssetNode] = {}
        for source in sync.sources:
            found = self.raw_assets(source)
            if not found:
                raise DagsterRefused(
                    f"Dagster has no raw assets for source {source!r}: is the "
                    "code location loaded with this source's spec?"
                )
            assets.update((a.key, a) for a in found)
        planned = plan_runs(
            [a.plan_node for a in assets.values()],
            client_id=sync.client_id,
            start=sync.start_date,
            end=sync.end_date,
            kind=SYNC,
        )
        sources = ",".join(sync.sources)
        for run in planned:
            # A run has one partitions definition: assets whose partitions differ (a source
            # whose days start later) go in a run of their own.
            alike: dict[str, list[AssetNode]] = {}
            for key in run.keys:
                alike.setdefault(assets[key].partitions or "", []).append(assets[key])
            for index, (_, members) in enumerate(sorted(alike.items())):
                part = PARTS[run.name] + (f"-{index + 1}" if index else "")
                tags = {**run.tags, SYNC_TAG: sync.id, SOURCE_TAG: sources, PART_TAG: part}
                launched[part] = self._launch(members, tags, full_refresh=sync.full_refresh)

    def _terminate(self, run_ids: list[str]) -> None:
        """Best effort: a sync that is not kept leaves no run of its own going."""
        if not run_ids:
            return
        try:
            self.graphql.execute(TERMINATE_MUTATION, {"runIds": run_ids})
            _log.info("runs_terminated", run_ids=run_ids, reason="the sync could not launch")
        except (DagsterUnavailable, DagsterRefused) as exc:
            _log.warning("runs_left_running", run_ids=run_ids, reason=str(exc))

    def _launch(self, assets: list[AssetNode], tags: dict[str, str], *, full_refresh: bool) -> str:
        first = assets[0]
        if not first.job:
            raise DagsterRefused(f"Dagster has no asset job for {'/'.join(first.key)}")
        config: dict[str, Any] = {}
        if full_refresh:
            config = {
                "ops": {a.op_name: {"config": {"full_refresh": True}} for a in assets if a.op_name}
            }
        params = {
            "selector": {
                "repositoryLocationName": first.location,
                "repositoryName": first.repository,
                "jobName": first.job,
                "assetSelection": [{"path": list(a.key)} for a in assets],
            },
            "runConfigData": config,
            "executionMetadata": {
                "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())]
            },
        }
        result = self.graphql.execute(
            LAUNCH_MUTATION, {"params": params}, timeout=LAUNCH_TIMEOUT_SECONDS
        )["launchRun"]
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


def _asset_node(node: dict[str, Any]) -> AssetNode:
    jobs = [j for j in node.get("jobNames") or [] if j.startswith("__ASSET_JOB")]
    return AssetNode(
        key=tuple(node["assetKey"]["path"]),
        op_name=node.get("opName"),
        partitioned=bool(node.get("isPartitioned")),
        partition_type=(node.get("partitionDefinition") or {}).get("type"),
        partitions=(node.get("partitionDefinition") or {}).get("description"),
        materializable=bool(node.get("isMaterializable")),
        job=jobs[0] if jobs else None,
        dependencies=tuple(tuple(d["path"]) for d in node.get("dependencyKeys") or []),
        repository=node["repository"]["name"],
        kinds=tuple(node.get("kinds") or ()),
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
