"""A temporary DuckDB warehouse with its own copy of the dbt project, for tests that run dbt.

dbt runs on the copy (generated from the test's specs), so the tests never touch the
developer's dbt target; it runs as a child process, since in-process dbt would hold the DuckDB
file open. `land_sandbox` and `load_landed` fill the raw tables the way a user's runs would:
pages extracted over HTTP into a landing zone, then loaded, under one client or several.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from integration_platform.checks.resolution_scores import ClientResolution, client_resolution
from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.extraction.state import IncrementalState
from integration_platform.landing.ingest import extract_to_landing
from integration_platform.landing.loader import load_attempt
from integration_platform.landing.zone import Attempt, LandingZone
from integration_platform.specs.models import SourceSpec
from integration_platform.transform.dbt_assets import dbt_executable
from integration_platform.transform.generate import generate
from tests.e2e.platform import dbt_project_copy

ER_SELECTION = ["--select", "+dim_customers", "--indirect-selection", "cautious"]


@dataclass
class DbtWarehouse:
    path: Path
    project: Path

    @classmethod
    def create(cls, root: Path, specs: dict[str, SourceSpec]) -> DbtWarehouse:
        """An empty warehouse file under `root` and a dbt project generated from `specs`."""
        project = dbt_project_copy(root / "dbt_project")
        generate(specs, project)
        return cls(root / "warehouse.duckdb", project)

    def dbt(self, *args: str, check: bool = True) -> list[str]:
        """Run dbt; return "<node name> <status>" per node, asserting that none failed (unless
        `check` is false: then the statuses say which did)."""
        done = subprocess.run(
            [
                dbt_executable(),
                *args,
                "--project-dir",
                str(self.project),
                "--profiles-dir",
                str(self.project),
            ],
            env={**os.environ, "WAREHOUSE_PATH": str(self.path)},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0 or not check, done.stdout[-4000:]
        results = json.loads((self.project / "target" / "run_results.json").read_text())
        return [f"{_node_name(r['unique_id'])} {r['status']}" for r in results["results"]]

    def resolution(self, client_id: str = DEMO_CLIENT_ID) -> ClientResolution:
        """One client's clusters and candidate pairs, records named as the sandbox names them
        (`source:endpoint:id`), as the entity-resolution check reads them."""
        return client_resolution(duckdb.connect(str(self.path), read_only=True), client_id)

    def clusters(self, client_id: str = DEMO_CLIENT_ID) -> dict[str, str]:
        """`source:endpoint:id` → customer_id, of one client's records."""
        return dict(self.resolution(client_id).clusters.iter_rows())

    def candidate_pairs(self, client_id: str = DEMO_CLIENT_ID) -> list[tuple[str, str]]:
        return list(self.resolution(client_id).candidate_pairs.iter_rows())

    def execute(self, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.path)) as connection:
            return connection.execute(sql, list(parameters)).fetchall()


def truth_frame(truth: dict[str, str]) -> pl.DataFrame:
    """record_key → sandbox entity id as the entity-resolution scores take it."""
    return pl.DataFrame(
        {"record_key": list(truth), "entity_id": list(truth.values())},
        schema={"record_key": pl.String, "entity_id": pl.String},
    )


@dataclass(frozen=True)
class Landed:
    """One extracted partition of one endpoint, waiting in the landing zone to be loaded."""

    spec: SourceSpec
    endpoint: str
    partition: str | None
    attempt: Attempt


async def land_sandbox(loads: list[tuple[SourceSpec, str, str | None]], data: Path) -> list[Landed]:
    """Extract each (spec, endpoint, partition) over HTTP into a landing zone under `data`,
    whole (full refresh)."""
    zone, state = LandingZone(data / "landing"), IncrementalState(data / "state")
    landed = []
    for spec, endpoint, partition in loads:
        run_id = str(uuid.uuid4())
        attempt = zone.open_attempt(spec.source, endpoint, partition, run_id, resume=False)
        await extract_to_landing(
            spec,
            endpoint,
            attempt,
            partition=partition,
            run_id=run_id,
            state=state,
            full_refresh=True,
            rate_limit_dir=data / "ratelimit",
        )
        landed.append(Landed(spec, endpoint, partition, attempt))
    return landed


def load_landed(warehouse: Path, landed: list[Landed], client_id: str = DEMO_CLIENT_ID) -> None:
    """Load every landed partition into the raw tables as `client_id`'s rows."""
    with duckdb.connect(str(warehouse)) as connection:
        for item in landed:
            load_attempt(
                connection,
                spec=item.spec,
                endpoint=item.endpoint,
                attempt=item.attempt,
                partition=item.partition,
                run_id=str(uuid.uuid4()),
                client_id=client_id,
            )


def _node_name(unique_id: str) -> str:
    """model.<package>.<name>, test.<package>.<name>.<hash>, unit_test.<package>.<model>.<name>"""
    parts = unique_id.split(".")
    return parts[3] if parts[0] == "unit_test" else parts[2]
