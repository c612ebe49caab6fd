"""The source specs as a Dagster Component: every definition a spec declares, per source.

A `defs.yaml` naming `SourceSpecsComponent` loads the YAML specs (`sources_path`, else
`SOURCES_PATH`, else `sources/`) and builds, for each source, its raw assets with their checks,
its API resource, its schedules and jobs, and the reconciliation of its pushed endpoints; plus
the webhook drain job and sensor shared by every pushed source. Other defs modules reach the
same specs through `context.load_component(...).load_specs()`, so nothing loads another set.
"""

from __future__ import annotations

from dagster import Component, ComponentLoadContext, Definitions, Model, Resolvable
from pydantic import Field

from integration_platform.assets.raw import api_resource_key
from integration_platform.assets.raw_steps import platform_raw_assets
from integration_platform.assets.resources import api_resource
from integration_platform.automation.reconciliation import build_reconciliation
from integration_platform.automation.schedules import source_automation
from integration_platform.automation.webhook_sensor import build_drain_job, build_webhook_sensor
from integration_platform.clients.credentials import StoredCredentials
from integration_platform.specs.loader import SOURCES_PATH_VARIABLE, load_specs, spec_paths
from integration_platform.specs.models import SourceSpec


class SourceSpecsComponent(Component, Model, Resolvable):
    """Raw assets (`raw/<source>/<endpoint>`, with their checks), API resources, schedules,
    jobs and webhook sensors for every source spec in `sources_path`."""

    sources_path: str | None = Field(
        default=None,
        description="Spec files or folders of *.yaml, separated by the OS path separator "
        f"(relative to the working directory). Unset: the {SOURCES_PATH_VARIABLE} environment "
        "variable, else sources/ in the repository.",
    )

    def load_specs(self) -> dict[str, SourceSpec]:
        """Every spec, with its `${VAR}` references unresolved (no secret is needed to load)."""
        return load_specs(spec_paths(self.sources_path))

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        specs = self.load_specs()
        jobs, schedules = source_automation(specs)
        # Webhooks: the sensor drains the receiver's inbox into raw; a daily pull reconciles.
        drain_job = build_drain_job(specs)
        reconciliation_jobs, reconciliation_schedules = build_reconciliation(specs)
        return Definitions(
            assets=platform_raw_assets(specs),
            jobs=[*jobs, drain_job, *reconciliation_jobs],
            schedules=[*schedules, *reconciliation_schedules],
            sensors=[build_webhook_sensor(specs, drain_job)],
            # Other clients' credentials come from the client store (the demo's from the env).
            resources={
                api_resource_key(name): api_resource(spec, credentials=StoredCredentials())
                for name, spec in specs.items()
            },
        )
