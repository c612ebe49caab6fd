"""The dbt project as one asset, `dbt_build` (keys, automation and metadata:
transform/dbt_assets.py), and the dbt CLI resource it runs with.
(No `from __future__ import annotations`: `@definitions` reads the context annotation.)"""

from dagster import ComponentLoadContext, Definitions, definitions

from integration_platform.components import SourceSpecsComponent
from integration_platform.transform.dbt_assets import (
    build_dbt_assets,
    dbt_resource,
    prepared_dbt_project,
)

SOURCES = "sources"  # the folder of the source specs' component (sources/defs.yaml)


@definitions
def defs(context: ComponentLoadContext) -> Definitions:
    # The project prepared from the same specs (it writes no file and parses nothing).
    specs = context.load_component(SOURCES, SourceSpecsComponent).load_specs()
    project = prepared_dbt_project(specs)
    return Definitions(
        assets=[build_dbt_assets(project)],
        resources={"dbt": dbt_resource(project)},
    )
