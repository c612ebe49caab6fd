"""dbt models as Dagster assets, keyed so the graph runs from each API endpoint to each mart.

One translator decides every key and group: dbt sources are the raw assets
(`raw/<source>/<endpoint>`), models are `<layer>/<model>`. dbt tests become asset checks.
The whole project is one asset that cannot be split: one `dbt build`, which Dagster's
automation requests when raw data lands (automation/marts.py), at most one at a time (pool
`warehouse`), under the warehouse write lock; then the read-only copy is published. Each
model reports its row count, column types and column lineage (dagster-dbt's metadata; the
lineage is kept per model and computed again only where the SQL or a schema changed:
column_metadata.py); entity resolution's weights model also reports each client's estimates,
a table and a chart (comparison_weights.py).
(No `from __future__ import annotations`: Dagster reads the parameter annotations at runtime.)
"""

import hashlib
import importlib.metadata
import json
import os
import shutil
import sys
import uuid
from collections.abc import Iterator, Mapping
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    AutomationCondition,
    FreshnessPolicy,
    multi_asset,
)
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject
from dagster_dbt.asset_utils import build_dbt_specs
from dbt.adapters.factory import reset_adapters
from packaging import version

from integration_platform import environment
from integration_platform.assets.resources import WarehouseResource
from integration_platform.automation.marts import RAW_LOAD_SUMMARY, build_condition
from integration_platform.celery_workers import WAREHOUSE_STEP_TAGS
from integration_platform.specs.models import SourceSpec
from integration_platform.transform.column_metadata import ColumnLineageCache, with_build_metadata
from integration_platform.transform.comparison_weights import with_weights_metadata
from integration_platform.transform.generate import generate, out_of_date

LAYERS = ("staging", "intermediate", "marts")
DBT_BUILD = "dbt_build"
WAREHOUSE_POOL = "warehouse"
# How fresh a mart should be: the schedules pull each day once, early the next day.
MART_FRESHNESS = FreshnessPolicy.time_window(
    warn_window=timedelta(hours=26), fail_window=timedelta(hours=50)
)
# Each build writes its artifacts (manifest, run results, compiled SQL, dbt.log: about 6 MB)
# into a folder of its own under target/ (dagster-dbt's unique target path), and nothing ever
# removes them: with a build every few minutes that is gigabytes a day. The newest are kept, to
# read what a recent build did.
KEEP_BUILD_TARGETS = 10
# dbt's log file at info, not its default debug: debug writes every query and macro call (8 MB
# per build of this project, against 0.8 MB), and costs the build about a second of CPU.
DBT_FILE_LOG_LEVEL = "info"
# dbt parses the whole project at the start of a build (about 4 s here) unless the build's target
# folder holds a partial parse made with the same profile. dagster-dbt copies `prepare`'s
# target/partial_parse.msgpack there, but dbt discards it ("profile has changed"): the profile's
# warehouse path is part of its hash, and `prepare` does not know the platform's. Each build
# keeps its partial parse per warehouse instead, and the next build of that warehouse starts
# from it; dbt still checks every file's hash, so a stale one only costs the full parse.
PARTIAL_PARSE = "partial_parse.msgpack"
# `COLUMN_METADATA=off` skips the column types and lineage (what they cost per build, first and
# later: benchmarks/README.md, "dbt build").
COLUMN_METADATA = "COLUMN_METADATA"


class DbtProjectNotPrepared(environment.SettingError):
    """The generated dbt files or the manifest do not match the specs."""


def dbt_executable() -> str:
    """The venv's dbt, so DbtCliResource finds it whatever PATH the process was given."""
    return str(Path(sys.executable).parent / "dbt")


class VenvDbtCliResource(DbtCliResource):
    """DbtCliResource running the venv's dbt, whose version is the installed dbt-core's.

    dagster-dbt (0.29.27, `DbtCliResource._cli_version`) asks it by running `dbt --version` at
    the start of every build: about 3 s of CPU on this 2-core machine (4 s wall under load),
    paid by every sync's and every automation's build. Our executable is always the venv's dbt
    (`dbt_executable`), so the installed package answers the same question for nothing.
    """

    @cached_property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable) != Path(dbt_executable()):  # someone else's dbt: ask it
            return super()._cli_version
        return version.parse(importlib.metadata.version("dbt-core"))


def dbt_resource(project: DbtProject) -> VenvDbtCliResource:
    """The dbt CLI resource the dbt assets run with: the venv's dbt on the prepared project."""
    # DbtCliResource.__init__ takes the DbtProject (its profiles and state); mypy sees only the
    # pydantic field (a str) on a subclass.
    return VenvDbtCliResource(project_dir=project, dbt_executable=dbt_executable())  # type: ignore[arg-type]


class IntegrationDbtTranslator(DagsterDbtTranslator):
    """Sources → their raw asset keys; models → `<layer>/<name>`, grouped by layer; models
    refresh when their inputs land; marts say how fresh they should be."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return AssetKey(["raw", dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return AssetKey([_layer(dbt_resource_props), dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return str(dbt_resource_props["source_name"])
        return _layer(dbt_resource_props)

    def get_automation_condition(
        self, dbt_resource_props: Mapping[str, Any]
    ) -> AutomationCondition[AssetKey] | None:
        # The project is one build (one asset definition that cannot be split): Dagster
        # requests all of it when any of its assets' conditions is true. One condition decides,
        # on the model that reads every raw asset. (On all 32 models it cost the daemon 3 s of
        # CPU per tick, every 5 s: each model asked again of ~30 raw assets whether they were
        # loading, and Dagster queries the clients' partitions to record every answer.) Seeds
        # and the other models change only with the code, and are built with it.
        if dbt_resource_props["resource_type"] != "model":
            return None
        return (
            build_condition()
            if self.get_asset_key(dbt_resource_props) == RAW_LOAD_SUMMARY
            else None
        )

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if spec.key.path[0] == "marts":
            spec = spec.replace_attributes(freshness_policy=MART_FRESHNESS)
        return spec


def _layer(props: Mapping[str, Any]) -> str:
    path = Path(str(props.get("original_file_path", "")))
    for part in path.parts:
        if part in LAYERS:
            return part
    return "staging" if "generated" in path.parts else "dbt"


def prepare_dbt_project(specs: dict[str, SourceSpec]) -> DbtProject:
    """Generate the spec-derived dbt files and make sure a manifest matches them
    (`integration-platform prepare`, which `make install` and `make run` call)."""
    project_dir = environment.dbt_project_dir()
    changed = generate(specs, project_dir)
    project = DbtProject(project_dir=project_dir, profiles_dir=project_dir)
    if changed or _manifest_is_stale(project.manifest_path, project_dir):
        dbt_resource(project).cli(["parse", "--quiet"], target_path=project.target_path).wait()
    return project


def prepared_dbt_project(specs: dict[str, SourceSpec]) -> DbtProject:
    """The prepared project, for loading the definitions: it writes no file and parses
    nothing (every run loads the definitions), or says how to prepare it."""
    project_dir = environment.dbt_project_dir()
    project = DbtProject(project_dir=project_dir, profiles_dir=project_dir)
    stale = out_of_date(specs, project_dir)
    if stale or _manifest_is_stale(project.manifest_path, project_dir):
        what = (
            f"{len(stale)} generated dbt file(s) do not match the specs ({stale[0].name}, ...)"
            if stale
            else f"the dbt manifest {project.manifest_path} is missing or older than the project"
        )
        raise DbtProjectNotPrepared(
            f"{what}: run `.venv/bin/integration-platform prepare` (make install and make run "
            "do), with the same SOURCES_PATH and DBT_PROJECT_DIR"
        )
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


def column_lineage_cache_path(warehouse: Path) -> Path:
    """The column lineage computed for the warehouse's models, beside it (column_metadata.py)."""
    return warehouse.with_name(f"{warehouse.stem}.column_lineage.json")


def build_dbt_assets(project: DbtProject) -> AssetsDefinition:
    manifest = json.loads(project.manifest_path.read_text())
    specs, check_specs = build_dbt_specs(
        translator=IntegrationDbtTranslator(),
        manifest=manifest,
        select="fqn:*",
        exclude="",
        selector="",
        io_manager_key=None,
        project=project,
    )

    @multi_asset(
        name=DBT_BUILD,
        specs=specs,
        check_specs=check_specs,
        can_subset=False,
        pool=WAREHOUSE_POOL,
        # On celery workers: the `warehouse` queue, whose worker is DuckDB's one writer.
        op_tags=WAREHOUSE_STEP_TAGS,
        allow_arbitrary_check_specs=True,
        description="One `dbt build` of the whole project (staging, entity resolution, marts "
        "and their tests); the read-only copy for BI tools is published after it.",
    )
    def dbt_build(
        context: AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
    ) -> Iterator[Any]:
        store = warehouse.warehouse()
        os.environ["WAREHOUSE_PATH"] = str(store.path)  # dbt's profile reads it
        # dbt's unit tests check the SQL, not the data: `make test` runs them
        # (tests/integration/test_entity_resolution.py); a build need not repeat them.
        args = ["build", "--exclude-resource-type", "unit_test"]
        args += ["--log-level-file", DBT_FILE_LOG_LEVEL]
        invocation = None
        target = build_target_path(Path(dbt.project_dir), context.run.run_id)
        cache = partial_parse_cache(Path(dbt.project_dir), store.path)
        try:
            with store.locked():
                reuse_partial_parse(cache, target)
                invocation = dbt.cli(args, context=context, target_path=target)
                lineage = (
                    ColumnLineageCache.load(column_lineage_cache_path(store.path))
                    if os.environ.get(COLUMN_METADATA, "on").lower() != "off"
                    else None
                )
                yield from with_weights_metadata(
                    invocation, with_build_metadata(invocation, invocation.stream(), lineage)
                )
                if warehouse.publish:
                    store.publish()
        finally:
            # The row counts and column metadata are read through dbt-duckdb in this process;
            # its environment keeps the warehouse open read-write after the build, which would
            # refuse any other connection to the file from this process (materialize and the
            # demo go on in it). dbt-duckdb closes it only when replacing it: close it here.
            _close_duckdb_environment()
            # dagster-dbt registers a dbt adapter in this process (it reads relations through
            # it) and leaves it in dbt's global registry; its multiprocessing lock is a named
            # semaphore, reported as leaked by `make demo` and `materialize`, which end with
            # os._exit. Dropping the adapter lets the lock unlink its semaphore now.
            reset_adapters()  # type: ignore[no-untyped-call]
            keep_partial_parse(target, cache)
            if invocation is not None:
                prune_build_targets(invocation.target_path, KEEP_BUILD_TARGETS)

    return dbt_build


def build_target_path(project_dir: Path, run_id: str) -> Path:
    """A build's own target folder, named as dagster-dbt names it (`dbt_build-<run>-<id>`)."""
    return project_dir / "target" / f"{DBT_BUILD}-{run_id[:7]}-{uuid.uuid4().hex[:7]}"


def partial_parse_cache(project_dir: Path, warehouse: Path) -> Path:
    """Where the builds of `warehouse` keep their partial parse (PARTIAL_PARSE above)."""
    digest = hashlib.sha256(str(warehouse.resolve()).encode()).hexdigest()[:16]
    return project_dir / "target" / "partial_parse" / f"{digest}.msgpack"


def reuse_partial_parse(cache: Path, target: Path) -> bool:
    """Start the build in `target` from the warehouse's last partial parse, if there is one
    (dagster-dbt then leaves it in place)."""
    if not cache.exists():
        return False
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cache, target / PARTIAL_PARSE)
    return True


def keep_partial_parse(target: Path, cache: Path) -> bool:
    """Keep the partial parse the build in `target` wrote (dbt writes it before running
    anything, so a failed build keeps it too), replacing the cache whole."""
    made = target / PARTIAL_PARSE
    if not made.exists():
        return False
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(f".{uuid.uuid4().hex[:7]}.tmp")
    shutil.copyfile(made, partial)
    os.replace(partial, cache)
    return True


def prune_build_targets(current: Path, keep: int) -> list[Path]:
    """Remove the older builds' target folders beside `current` (`dbt_build-<run>-<id>`), so
    `keep` remain, `current` among them; returns what was removed."""
    builds = [p for p in current.parent.glob(f"{DBT_BUILD}-*") if p.is_dir() and p != current]
    builds.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    removed = builds[max(keep - 1, 0) :]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)  # another process may be removing it too
    return removed


def _close_duckdb_environment() -> None:
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        environment_ = DuckDBConnectionManager._ENV
        if environment_ is not None:
            environment_.close()
            DuckDBConnectionManager._ENV = None
