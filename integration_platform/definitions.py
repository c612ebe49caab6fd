"""The Dagster code location: every asset, check, resource, job, schedule and sensor.

Specs load without resolving `${VAR}` references, so definitions load without secrets; each
source's API resource binds its variables with EnvVar and resolves them when a run starts.
"""

from __future__ import annotations

from dagster import Definitions

from integration_platform.assets.raw import api_resource_key, raw_assets
from integration_platform.assets.resources import api_resource, default_resources
from integration_platform.specs.loader import load_specs

specs = load_specs()

defs = Definitions(
    assets=raw_assets(specs),
    resources={
        **default_resources(),
        **{api_resource_key(name): api_resource(spec) for name, spec in specs.items()},
    },
)
