"""The Dagster code location: every asset, check, resource, job, schedule and sensor.

Specs load without resolving `${VAR}` references, so definitions load without secrets; each
source's API resource binds its variables with EnvVar and resolves them when a run starts.
Loading writes no file and parses no dbt project (every run loads the definitions): the
manifest is built once by `integration-platform prepare` (make install, make run).
"""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar, in_process_executor
from dagster_dbt import DbtCliResource

from integration_platform.assets.raw import api_resource_key, raw_assets
from integration_platform.assets.resources import api_resource, default_resources
from integration_platform.automation.alerts import AlertWebhookResource, build_alert_sensor
from integration_platform.automation.freshness import build_client_lag, mart_keys
from integration_platform.automation.marts import automation_sensor
from integration_platform.automation.reconciliation import build_reconciliation
from integration_platform.automation.schedules import source_automation
from integration_platform.automation.webhook_sensor import (
    build_drain_job,
    build_webhook_sensor,
    default_inbox_resource,
)
from integration_platform.checks.entity_resolution import build_entity_resolution_check
from integration_platform.clients.credentials import StoredCredentials
from integration_platform.dagster_warnings import silence_dagster_notices
from integration_platform.logs import configure_logging
from integration_platform.specs.loader import load_specs
from integration_platform.transform.dbt_assets import (
    build_dbt_assets,
    dbt_executable,
    prepared_dbt_project,
)

configure_logging()
silence_dagster_notices()  # before the assets are built: every process that loads them warns
specs = load_specs()
dbt_project = prepared_dbt_project(specs)
jobs, schedules = source_automation(specs)
# Webhooks: the sensor drains the receiver's inbox into raw; a daily pull reconciles.
drain_job = build_drain_job(specs)
reconciliation_jobs, reconciliation_schedules = build_reconciliation(specs)

raw = raw_assets(specs)
dbt_build = build_dbt_assets(dbt_project)
# Which clients' marts lag behind their raw data (the client_lag check on each mart).
client_lag, client_lag_sensor = build_client_lag(
    mart_keys([dbt_build]), [key for asset in raw for key in asset.keys]
)

defs = Definitions(
    assets=[*raw, dbt_build],
    asset_checks=[build_entity_resolution_check(specs), client_lag],
    jobs=[*jobs, drain_job, *reconciliation_jobs],
    schedules=[*schedules, *reconciliation_schedules],
    sensors=[
        build_alert_sensor(),
        build_webhook_sensor(specs, drain_job),
        automation_sensor(),
        client_lag_sensor,
    ],
    # Steps run in the run's own process. The multiprocess default starts a process per step,
    # and each one loads these definitions again (about 6 s here, dagster-dbt's import most
    # of it): a client-week's raw run spent most of its minute starting processes. Raw steps
    # wait on HTTP and take the warehouse's write lock in turn anyway; dbt is one step.
    executor=in_process_executor,
    resources={
        **default_resources(),
        **{
            api_resource_key(name): api_resource(spec, credentials=StoredCredentials())
            for name, spec in specs.items()
        },
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable()),
        "alerts": AlertWebhookResource(
            url=EnvVar("ALERT_WEBHOOK_URL") if os.environ.get("ALERT_WEBHOOK_URL") else ""
        ),
        "webhook_inbox": default_inbox_resource(),
    },
)
