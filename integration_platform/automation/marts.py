"""When the dbt project rebuilds itself: Dagster's declarative automation on the dbt models.

A raw partition that lands (a schedule, the webhook drain, a stream's report, a sync, a run
from the UI) is an update of a raw asset. The dbt project is one build that cannot be split
(one `dbt build`), so one condition decides it: the one on `marts/raw_load_summary`, the model
that reads every raw asset. When it turns true, Dagster's `automation_sensor` requests the
whole build, once. Meanwhile:
- updates coalesce: the condition is "some input changed since this model was last
  requested or built", so ten raw partitions that land while a build runs, or waits, are
  served by the one build that comes next;
- one build at a time: not while this build is in progress (and the build's pool,
  `warehouse`, has one slot);
- a build waits while raw loads are still running (so the clients whose syncs land
  together share it), but not forever: `marts/raw_load_summary` reads every raw asset, and
  while any of them is loading the build waits, at most until the next half-hour mark after
  the first input it would serve landed (`AUTOMATION_MAX_WAIT_CRON` sets the marks).
"""

from __future__ import annotations

import os

from dagster import AssetKey, AutomationCondition, AutomationConditionSensorDefinition

from integration_platform.automation.switch import default_status
from integration_platform.environment import SettingError
from integration_platform.run_kinds import AUTOMATION, KIND_TAG

# The model that reads every raw asset (generated: transform/generate.py): "is any raw asset
# loading?" is asked of its dependencies.
RAW_LOAD_SUMMARY = AssetKey(["marts", "raw_load_summary"])
# A build that waits for raw loads still running starts anyway at the next of these marks
# (after the first input it would serve landed); `AUTOMATION_MAX_WAIT_CRON` sets other marks.
MAX_WAIT_CRON = "*/30 * * * *"
MAX_WAIT_CRON_VARIABLE = "AUTOMATION_MAX_WAIT_CRON"
AUTOMATION_SENSOR = "automation_sensor"


def max_wait_cron() -> str:
    from dagster._utils.schedules import is_valid_cron_string  # the check Dagster applies

    cron = os.environ.get(MAX_WAIT_CRON_VARIABLE) or MAX_WAIT_CRON
    if not is_valid_cron_string(cron):
        raise SettingError(
            f"{MAX_WAIT_CRON_VARIABLE}={cron!r} is not a cron string: set it to one such as "
            f"{MAX_WAIT_CRON!r} (the default), or unset it"
        )
    return cron


def build_condition() -> AutomationCondition[AssetKey]:
    """Request the dbt build when an input has changed since the last request or build,
    unless it is building, or raw loads are running (until the next half-hour mark after that
    change)."""
    # Handled by a request only: an input that lands while a build runs is still pending
    # when the build ends (the build may not have read it), so the next build takes it.
    requested = AutomationCondition.newly_requested() | AutomationCondition.initial_evaluation()
    changed = (
        AutomationCondition.any_deps_updated()
        .since(requested)
        .with_label("an input changed since the last build")
    )
    raw_loading = AutomationCondition.asset_matches(
        RAW_LOAD_SUMMARY, AutomationCondition.any_deps_in_progress()
    ).with_label("raw loads are running")
    # Counted from the first input that landed since the last build, not from the last
    # request: a mark that passed between that request and the landing would end the wait
    # at once, and the clients whose syncs land together would not share the build.
    waited_long = AutomationCondition.cron_tick_passed(max_wait_cron()).since(changed.newly_true())
    return (
        changed
        & ~AutomationCondition.in_progress()
        & (~raw_loading | waited_long.with_label("waited until the half-hour mark"))
    ).with_label("refresh_when_inputs_land")


def automation_sensor() -> AutomationConditionSensorDefinition:
    """Evaluates the conditions every few seconds in the daemon (`make run`); its runs are
    tagged `integration_platform/kind=automation`."""
    return AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target="*",
        minimum_interval_seconds=5,
        default_status=default_status(),
        run_tags={KIND_TAG: AUTOMATION},
        description="Rebuilds the dbt models when raw data lands (see refresh_when_inputs_land "
        "on the Automation tab of marts/raw_load_summary).",
    )
