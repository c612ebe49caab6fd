"""The Dagster code location: every asset, check, resource, job, schedule and sensor.

Specs load without resolving `${VAR}` references, so definitions load without secrets; each
source's API resource binds its variables with EnvVar and resolves them when a run starts.
"""

from __future__ import annotations

from dagster import Definitions
from dagster_dbt import DbtCliResource

from integration_platform.assets.raw import api_resource_key, raw_assets
from integration_platform.assets.resources import api_resource, default_resources
from integration_platform.logs import configure_logging
from integration_platform.specs.loader import load_specs
from integration_platform.transform.dbt_assets import (
    build_dbt_assets,
    dbt_executable,
    prepare_dbt_project,
)

configure_logging()
specs = load_specs()
dbt_project = prepare_dbt_project(specs)

defs = Definitions(
    assets=[*raw_assets(specs), build_dbt_assets(dbt_project)],
    resources={
        **default_resources(),
        **{api_resource_key(name): api_resource(spec) for name, spec in specs.items()},
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable()),
    },
)
