"""dbt models as Dagster assets, keyed so the graph runs from each API endpoint to each mart.

One translator decides every key and group: dbt sources are the raw assets
(`raw/<source>/<endpoint>`), models are `<layer>/<model>`. dbt tests become asset checks.
dbt runs under the warehouse write lock, then the read-only copy is published. (No
`from __future__ import annotations`: Dagster reads the parameter annotations at runtime.)
"""

import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetKey
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets
from dbt.adapters.factory import reset_adapters

from integration_platform import environment
from integration_platform.assets.resources import WarehouseResource
from integration_platform.specs.models import SourceSpec
from integration_platform.transform.generate import generate

LAYERS = ("staging", "intermediate", "marts")


def dbt_project_dir() -> Path:
    """`DBT_PROJECT_DIR` moves the dbt project (tests run a copy); default: dbt_project/."""
    return Path(os.environ.get("DBT_PROJECT_DIR", environment.PROJECT_ROOT / "dbt_project"))


def dbt_executable() -> str:
    """The venv's dbt, so DbtCliResource finds it whatever PATH the process was given."""
    return str(Path(sys.executable).parent / "dbt")


class IntegrationDbtTranslator(DagsterDbtTranslator):
    """Sources → their raw asset keys; models → `<layer>/<name>`, grouped by layer."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return AssetKey(["raw", dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return AssetKey([_layer(dbt_resource_props), dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return str(dbt_resource_props["source_name"])
        return _layer(dbt_resource_props)


def _layer(props: Mapping[str, Any]) -> str:
    path = Path(str(props.get("original_file_path", "")))
    for part in path.parts:
        if part in LAYERS:
            return part
    return "staging" if "generated" in path.parts else "dbt"


def prepare_dbt_project(specs: dict[str, SourceSpec]) -> DbtProject:
    """Generate the spec-derived dbt files and make sure a manifest matches them."""
    project_dir = dbt_project_dir()
    changed = generate(specs, project_dir)
    project = DbtProject(project_dir=project_dir, profiles_dir=project_dir)
    if changed or _manifest_is_stale(project.manifest_path, project_dir):
        DbtCliResource(project_dir=project, dbt_executable=dbt_executable()).cli(
            ["parse", "--quiet"], target_path=project.target_path
        ).wait()
    return project


def _manifest_is_stale(manifest: Path, project_dir: Path) -> bool:
    """Missing, or older than any model, macro, seed, test or project file it was parsed from."""
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    sources = [project_dir / "dbt_project.yml", project_dir / "profiles.yml"]
    for folder in ("models", "macros", "seeds", "tests", "analyses"):
        sources += [p for p in (project_dir / folder).rglob("*") if p.is_file()]
    return any(p.stat().st_mtime > built for p in sources if p.exists())


def build_dbt_assets(project: DbtProject) -> Any:
    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        dagster_dbt_translator=IntegrationDbtTranslator(),
    )
    def dbt_models(
        context: AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
    ) -> Iterator[Any]:
        store = warehouse.warehouse()
        os.environ["WAREHOUSE_PATH"] = str(store.path)  # dbt's profile reads it
        # A subset run tests only what it builds: dbt's default (eager) would also run, say,
        # fct_invoices' relationships test to dim_customers when only dim_customers is built.
        os.environ.setdefault("DBT_INDIRECT_SELECTION", "cautious")
        try:
            with store.locked():
                yield from dbt.cli(["build"], context=context).stream()
                if warehouse.publish:
                    store.publish()
        finally:
            # dagster-dbt registers a dbt adapter in this process (it reads relations through
            # it) and leaves it in dbt's global registry; its multiprocessing lock is a named
            # semaphore, reported as leaked by `make demo` and `materialize`, which end with
            # os._exit. Dropping the adapter lets the lock unlink its semaphore now.
            reset_adapters()  # type: ignore[no-untyped-call]

    return dbt_models
