"""A stand-in Dagster webserver for API tests: the GraphQL operations the orchestrator sends.

It answers by operation name, records every launch with its tags, and lets a test decide how
runs end (`finish`) and play Dagster's automation building the dbt assets (`automation_builds_dbt`).
The real webserver is exercised by test_sync_with_dagster.py.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

RAW_ASSETS = {
    "crm": ["companies", "contacts"],
    "billing": ["customers", "invoices"],
    "support": ["customers"],
    "analytics": ["events"],
}
DOWNSTREAM = [("staging", "stg_crm__contacts"), ("marts", "dim_customers")]
SEED = ("dbt", "nicknames")
BILLING_STAGING = ("staging", "stg_billing__invoices")
# What the automation's dbt build materializes (the seed is no dbt asset downstream of raw).
DBT_ASSETS = [list(DOWNSTREAM[0]), list(DOWNSTREAM[1]), list(SEED), list(BILLING_STAGING)]


@dataclass
class FakeRun:
    run_id: str
    tags: dict[str, str]
    assets: list[list[str]]
    config: dict[str, Any]
    status: str = "QUEUED"
    failure: str | None = None
    created: float = field(default_factory=time.time)
    figures: dict[str, int] = field(default_factory=dict)
    ended: float | None = None
    # Its assets' materializations are written (a succeeded run's always are; a running dbt
    # build's are as each model ends, before it publishes the copy and ends).
    materialized: bool = False


@dataclass
class FakeDagster:
    runs: list[FakeRun] = field(default_factory=list)
    partitions: set[str] = field(default_factory=set)
    declares_clients: bool = True
    launches_refused: str | None = None
    launches_before_refusal: int = 0  # with launches_refused: how many launches succeed first
    server: Any = None  # the ReceiverServer serving it: tests stop it to take Dagster down
    run_queries: int = 0  # how many times the API asked for runs: tests wait on its passes
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def finish(
        self,
        run_id: str,
        status: str = "SUCCESS",
        failure: str | None = None,
        figures: dict[str, int] | None = None,
    ) -> None:
        run = next(r for r in self.runs if r.run_id == run_id)
        run.status, run.failure, run.figures = status, failure, figures or {}
        run.ended = time.time() if status in ("SUCCESS", "FAILURE", "CANCELED") else None

    def automation_builds_dbt(self, status: str = "SUCCESS", failure: str | None = None) -> str:
        """Play Dagster's automation: a run of the dbt assets, created now (after every run
        that ended), ended with `status`; on success it materialized every dbt asset."""
        after = max((r.ended or r.created for r in self.runs), default=0.0)
        run = FakeRun(
            run_id=f"run-{next(self._ids):04d}",
            tags={"dagster/from_automation_condition": "true"},
            assets=[list(key) for key in DBT_ASSETS],
            config={},
            created=max(time.time(), after + 0.001),
        )
        self.runs.append(run)
        if status != "QUEUED":
            self.finish(run.run_id, status, failure)
        return run.run_id

    def runs_with(self, **tags: str) -> list[FakeRun]:
        return [r for r in self.runs if all(r.tags.get(k) == v for k, v in tags.items())]

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/server_info", self._info),
                Route("/graphql", self._graphql, methods=["POST"]),
            ]
        )

    async def _info(self, request: Request) -> JSONResponse:
        return JSONResponse({"dagster_version": "fake"})

    async def _graphql(self, request: Request) -> JSONResponse:
        body = await request.json()
        match = re.search(r"(?:query|mutation)\s+(\w+)", body["query"])
        operation = match.group(1) if match else ""
        handler = getattr(self, f"_op_{operation}", None)
        if handler is None:
            return JSONResponse({"errors": [{"message": f"unknown operation {operation}"}]})
        return JSONResponse({"data": handler(body.get("variables") or {})})

    def _op_AssetGraph(self, _: dict[str, Any]) -> dict[str, Any]:
        repository = {"name": "__repository__", "location": {"name": "integration_platform"}}
        nodes = [
            {
                "assetKey": {"path": ["raw", source, endpoint]},
                "opName": f"raw__{source}__{endpoint}",
                # Raw assets as the code location declares them: client x day, or reference
                # data partitioned by client alone.
                "isPartitioned": True,
                "isMaterializable": True,
                "partitionDefinition": {
                    "type": "DYNAMIC" if endpoint == "companies" else "MULTIPARTITIONED"
                },
                "jobNames": ["__ASSET_JOB"],
                "kinds": ["python"],
                "dependencyKeys": [],
                "repository": repository,
            }
            for source, endpoints in RAW_ASSETS.items()
            for endpoint in endpoints
        ]
        nodes += [
            {
                "assetKey": {"path": list(DOWNSTREAM[0])},
                "opName": "dbt_models",
                "isPartitioned": False,
                "isMaterializable": True,
                "jobNames": ["__ASSET_JOB"],
                "kinds": ["dbt", "duckdb"],
                "dependencyKeys": [{"path": ["raw", "crm", "contacts"]}],
                "repository": repository,
            },
            {
                "assetKey": {"path": list(DOWNSTREAM[1])},
                "opName": "dbt_models",
                "isPartitioned": False,
                "isMaterializable": True,
                "jobNames": ["__ASSET_JOB"],
                "kinds": ["dbt", "duckdb"],
                "dependencyKeys": [
                    {"path": list(DOWNSTREAM[0])},
                    {"path": list(SEED)},
                    {"path": ["staging", "stg_billing__invoices"]},
                ],
                "repository": repository,
            },
            {
                "assetKey": {"path": list(SEED)},
                "opName": "dbt_models",
                "isPartitioned": False,
                "isMaterializable": True,
                "jobNames": ["__ASSET_JOB"],
                "kinds": ["dbt", "duckdb"],
                "dependencyKeys": [],
                "repository": repository,
            },
            # billing's staging: read by dim_customers, fed by billing's raw assets
            {
                "assetKey": {"path": ["staging", "stg_billing__invoices"]},
                "opName": "dbt_models",
                "isPartitioned": False,
                "isMaterializable": True,
                "jobNames": ["__ASSET_JOB"],
                "kinds": ["dbt", "duckdb"],
                "dependencyKeys": [{"path": ["raw", "billing", "invoices"]}],
                "repository": repository,
            },
        ]
        return {"assetNodes": nodes}

    def _op_Launch(self, variables: dict[str, Any]) -> dict[str, Any]:
        if self.launches_refused and self.launches_before_refusal <= 0:
            return {"launchRun": {"__typename": "PythonError", "message": self.launches_refused}}
        self.launches_before_refusal -= 1
        params = variables["params"]
        run = FakeRun(
            run_id=f"run-{next(self._ids):04d}",
            tags={t["key"]: t["value"] for t in params["executionMetadata"]["tags"]},
            assets=[a["path"] for a in params["selector"]["assetSelection"]],
            config=params.get("runConfigData") or {},
        )
        self.runs.append(run)
        return {"launchRun": {"__typename": "LaunchRunSuccess", "run": {"runId": run.run_id}}}

    def _op_Runs(self, variables: dict[str, Any]) -> dict[str, Any]:
        self.run_queries += 1
        wanted = {t["key"]: t["value"] for t in variables["filter"].get("tags") or []}
        found = sorted(self.runs_with(**wanted), key=lambda r: r.created, reverse=True)
        if variables["filter"].get("runIds") is not None:
            found = [r for r in found if r.run_id in variables["filter"]["runIds"]]
        return {
            "runsOrError": {
                "__typename": "Runs",
                "results": [self._run_node(r) for r in found[: variables.get("limit") or 50]],
            }
        }

    def _op_AssetsLatest(self, variables: dict[str, Any]) -> dict[str, Any]:
        self.run_queries += 1
        infos = []
        for key in variables["keys"]:
            runs = sorted(
                (r for r in self.runs if key["path"] in r.assets),
                key=lambda r: r.created,
                reverse=True,
            )
            built = next((r for r in runs if r.status == "SUCCESS" or r.materialized), None)
            infos.append(
                {
                    "assetKey": {"path": key["path"]},
                    "latestMaterialization": {
                        "runId": built.run_id,
                        "timestamp": str(int((built.ended or built.created) * 1000)),
                    }
                    if built
                    else None,
                    "latestRun": self._run_node(runs[0]) if runs else None,
                }
            )
        return {"assetsLatestInfo": infos}

    def _run_node(self, run: FakeRun) -> dict[str, Any]:
        steps = (
            [
                {
                    "stepKey": "step",
                    "status": run.status,
                    "materializations": [
                        {
                            "assetKey": {"path": path},
                            "timestamp": str(int(run.created * 1000)),
                            "metadataEntries": [
                                {"label": k, "intValue": v} for k, v in run.figures.items()
                            ],
                        }
                        for path in run.assets
                    ],
                }
            ]
            if run.status == "SUCCESS"
            else []
        )
        return {
            "runId": run.run_id,
            "status": run.status,
            "creationTime": run.created,
            "startTime": run.created,
            "endTime": run.ended,
            "tags": [{"key": k, "value": v} for k, v in run.tags.items()],
            "assetSelection": [{"path": path} for path in run.assets],
            "stepStats": steps,
        }

    def _op_Logs(self, variables: dict[str, Any]) -> dict[str, Any]:
        run = next(r for r in self.runs if r.run_id == variables["runId"])
        events = (
            [
                {
                    "__typename": "ExecutionStepFailureEvent",
                    "stepKey": "raw__crm__contacts",
                    "message": "step failed",
                    "error": {"message": "Traceback ..."},
                    "failureMetadata": {"description": run.failure},
                }
            ]
            if run.failure
            else []
        )
        return {
            "logsForRun": {
                "__typename": "EventConnection",
                "cursor": "1",
                "hasMore": False,
                "events": events,
            }
        }

    def _op_Terminate(self, variables: dict[str, Any]) -> dict[str, Any]:
        for run in self.runs:
            if run.run_id in variables["runIds"]:
                self.finish(run.run_id, "CANCELED")
        return {"terminateRuns": {"__typename": "TerminateRunsResult"}}

    def _op_Repositories(self, _: dict[str, Any]) -> dict[str, Any]:
        return {
            "repositoriesOrError": {
                "__typename": "RepositoryConnection",
                "nodes": [{"name": "__repository__", "location": {"name": "integration_platform"}}],
            }
        }

    def _op_AddClient(self, variables: dict[str, Any]) -> dict[str, Any]:
        if not self.declares_clients:
            return {
                "addDynamicPartition": {
                    "__typename": "UnauthorizedError",
                    "message": "The repository does not contain a dynamic partitions definition "
                    "with the given name.",
                }
            }
        key = variables["key"]
        if key in self.partitions:
            return {
                "addDynamicPartition": {
                    "__typename": "DuplicateDynamicPartitionError",
                    "message": "exists",
                }
            }
        self.partitions.add(key)
        return {"addDynamicPartition": {"__typename": "AddDynamicPartitionSuccess"}}
