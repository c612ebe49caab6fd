"""A temporary DuckDB warehouse with its own copy of the dbt project, for entity-resolution tests.

dbt runs on the copy (generated from the test's specs), so the tests never touch the
developer's dbt target; it runs as a child process, since in-process dbt would hold the DuckDB
file open.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from integration_platform import environment
from integration_platform.specs.models import SourceSpec
from integration_platform.transform.dbt_assets import dbt_executable
from integration_platform.transform.generate import generate

ER_SELECTION = ["--select", "+dim_customers", "--indirect-selection", "cautious"]


@dataclass
class DbtWarehouse:
    path: Path
    project: Path

    @classmethod
    def create(cls, root: Path, specs: dict[str, SourceSpec]) -> DbtWarehouse:
        """An empty warehouse file under `root` and a dbt project generated from `specs`."""
        project = root / "dbt_project"
        shutil.copytree(environment.PROJECT_ROOT / "dbt_project", project,
                        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages",
                                                      ".user.yml", "generated"))
        generate(specs, project)
        return cls(root / "warehouse.duckdb", project)

    def dbt(self, *args: str) -> list[str]:
        """Run dbt; return "<node name> <status>" per node, asserting that none failed."""
        done = subprocess.run(
            [dbt_executable(), *args, "--project-dir", str(self.project),
             "--profiles-dir", str(self.project)],
            env={**os.environ, "WAREHOUSE_PATH": str(self.path)},
            capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stdout[-4000:]
        results = json.loads((self.project / "target" / "run_results.json").read_text())
        return [f"{_node_name(r['unique_id'])} {r['status']}" for r in results["results"]]

    def clusters(self) -> dict[str, str]:
        return dict(self.execute("select record_key, customer_id "
                                 "from intermediate.int_customer_clusters"))

    def candidate_pairs(self) -> list[tuple[str, str]]:
        return [(left, right) for left, right in self.execute(
            "select left_key, right_key from intermediate.int_customer_candidate_pairs")]

    def execute(self, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.path)) as connection:
            return connection.execute(sql, list(parameters)).fetchall()


def _node_name(unique_id: str) -> str:
    """model.<package>.<name>, test.<package>.<name>.<hash>, unit_test.<package>.<model>.<name>"""
    parts = unique_id.split(".")
    return parts[3] if parts[0] == "unit_test" else parts[2]
