"""The dbt build's declarative automation, evaluated over the real definitions: a raw
partition that lands requests the whole dbt build once, and nothing more until another lands.
(The daemon's side, coalescing and one build at a time, runs in
tests/e2e/test_platform_automation.py.)"""

from __future__ import annotations

from typing import Any

from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetSelection,
    DagsterInstance,
    Definitions,
    evaluate_automation_conditions,
    instance_for_test,
)

from integration_platform.assets.partitions import register_clients
from integration_platform.automation.marts import RAW_LOAD_SUMMARY


def land(instance: DagsterInstance, key: list[str], partition: str) -> None:
    instance.report_runless_asset_event(AssetMaterialization(AssetKey(key), partition=partition))


def test_a_landed_raw_partition_requests_the_whole_dbt_build_once_when_the_sensor_ticks(
    platform_defs: Definitions,
) -> None:
    graph = platform_defs.resolve_asset_graph()
    dbt_keys = {
        key
        for key in graph.get_all_asset_keys()
        if key.path[0] != "raw" and graph.get(key).is_materializable
    }
    with instance_for_test() as instance:
        register_clients(instance, "demo", "acme")
        quiet = evaluate_automation_conditions(defs=platform_defs, instance=instance)
        assert quiet.total_requested == 0  # nothing landed: nothing to build

        land(instance, ["raw", "crm", "contacts"], "acme|2025-03-01")
        land(instance, ["raw", "billing", "invoices"], "demo|2025-03-01")
        landed = evaluate_automation_conditions(
            defs=platform_defs, instance=instance, cursor=quiet.cursor
        )
        requested = {key for key in dbt_keys if landed.get_requested_partitions(key)}
        assert requested == dbt_keys  # one build of the whole project: it cannot be split
        # One condition decides it (on 32 models it cost the daemon 3 s of CPU per tick).
        assert [result.key for result in landed.results] == [RAW_LOAD_SUMMARY]
        assert any(key.path == ["marts", "dim_customers"] for key in requested)

        again = evaluate_automation_conditions(
            defs=platform_defs, instance=instance, cursor=landed.cursor
        )
        assert again.total_requested == 0  # served: the request handled both landings

        land(instance, ["raw", "support", "tickets"], "acme|2025-03-02")
        later = evaluate_automation_conditions(
            defs=platform_defs, instance=instance, cursor=again.cursor
        )
        assert {key for key in dbt_keys if later.get_requested_partitions(key)} == dbt_keys


def test_client_lag_names_the_clients_whose_raw_data_waits_for_the_marts_when_it_reports(
    platform_defs: Definitions,
) -> None:
    from dagster import AssetCheckEvaluation, build_sensor_context

    repository = platform_defs.get_repository_def()
    lag_sensor = repository.get_sensor_def("client_lag_sensor")
    with instance_for_test() as instance:
        register_clients(instance, "demo", "acme")
        for mart in ("dim_customers", "customer_360"):
            instance.report_runless_asset_event(AssetMaterialization(AssetKey(["marts", mart])))
        land(instance, ["raw", "crm", "contacts"], "acme|2025-03-01")  # after it

        first = lag_sensor.evaluate_tick(
            build_sensor_context(instance=instance, repository_def=repository)
        )
        evaluations = {
            e.asset_key.to_user_string(): e
            for e in first.asset_events
            if isinstance(e, AssetCheckEvaluation)
        }
        dim = evaluations["marts/dim_customers"]
        lags = dim.metadata["lag by client (s)"].value
        assert isinstance(lags, dict)
        assert lags["demo"] == 0.0 and lags["acme"] > 0.0  # acme's day waits for a build
        assert dim.metadata["clients lagging"].value == 1
        assert dim.passed  # minutes, not the 45 the check allows
        # The figures did not change: the next tick reports nothing (no event-log flood).
        again = lag_sensor.evaluate_tick(
            build_sensor_context(instance=instance, repository_def=repository, cursor=first.cursor)
        )
        assert not again.asset_events


def test_materialize_of_one_mart_runs_the_whole_dbt_build_when_planned(
    platform_defs: Definitions,
) -> None:
    from datetime import date

    from integration_platform.runs.main_job import plan

    stages = plan(
        platform_defs,
        client_id="demo",
        start=date(2025, 3, 1),
        end=date(2025, 3, 1),
        selection='key:"marts/dim_customers"',
    )
    assert [stage.name for stage in stages] == ["transform"]
    dbt_build = platform_defs.get_assets_def(AssetKey(["marts", "dim_customers"]))
    assert set(stages[0].keys) == set(dbt_build.keys)  # one build: it cannot be split


def test_a_build_waits_for_running_raw_loads_until_the_mark_after_its_first_landing_when_it_ticks(
    platform_defs: Definitions,
) -> None:
    from datetime import datetime

    from dagster import DagsterRunStatus

    # The one model whose condition decides the build (it reads every raw asset).
    model = RAW_LOAD_SUMMARY

    def tick(at: str, cursor: Any) -> Any:
        result = evaluate_automation_conditions(
            defs=platform_defs,
            instance=instance,
            asset_selection=AssetSelection.assets(model),
            evaluation_time=datetime.fromisoformat(f"2025-03-05T{at}+00:00"),
            cursor=cursor,
        )
        return result, bool(result.get_requested_partitions(model))

    with instance_for_test() as instance:
        register_clients(instance, "demo", "acme")
        result, _ = tick("10:05", None)
        land(instance, ["raw", "crm", "contacts"], "acme|2025-03-01")
        result, built = tick("10:20", result.cursor)
        assert built  # nothing loading: the build is requested at once

        # A half-hour mark passes (the sensor ticks every few seconds); then a day lands while
        # another raw load is still running.
        for at in ("10:25", "10:34"):
            result, built = tick(at, result.cursor)
            assert not built
        loading = AssetKey(["raw", "billing", "invoices"])
        instance.create_run_for_job(
            platform_defs.resolve_implicit_job_def_def_for_assets([loading]),  # type: ignore[arg-type]
            asset_selection={loading},
            tags={"dagster/partition": "demo|2025-03-01"},
            status=DagsterRunStatus.STARTED,
        )
        land(instance, ["raw", "crm", "contacts"], "demo|2025-03-01")
        for at in ("10:35", "10:50", "10:59"):
            result, built = tick(at, result.cursor)
            assert not built, f"requested at {at} while a raw load runs"  # the 10:30 mark is older
        result, built = tick("11:01", result.cursor)
        assert built  # the mark after the landing: it waited long enough
