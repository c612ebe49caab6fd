"""Checks that span sources and models: entity-resolution quality against the sandbox's
ground truth, and each client's lag from raw data to the marts (a check and its sensor).
(No `from __future__ import annotations`: `@definitions` reads the context annotation.)"""

from dagster import AssetsDefinition, ComponentLoadContext, Definitions, definitions

from integration_platform.automation.freshness import build_client_lag, mart_keys
from integration_platform.checks.entity_resolution import build_entity_resolution_check
from integration_platform.components import SourceSpecsComponent
from integration_platform.defs.transform import SOURCES

TRANSFORM = "transform.py"  # the dbt asset's module beside this one


@definitions
def defs(context: ComponentLoadContext) -> Definitions:
    specs = context.load_component(SOURCES, SourceSpecsComponent).load_specs()
    raw = context.build_defs(SOURCES).assets or []
    dbt = context.build_defs(TRANSFORM).assets or []
    client_lag, client_lag_sensor = build_client_lag(
        mart_keys(a for a in dbt if isinstance(a, AssetsDefinition)),
        [key for asset in raw if isinstance(asset, AssetsDefinition) for key in asset.keys],
    )
    return Definitions(
        asset_checks=[build_entity_resolution_check(specs), client_lag],
        sensors=[client_lag_sensor],
    )
