"""The one run planner, shared by `materialize`/the demo and the API's syncs."""

from __future__ import annotations

from datetime import date

from integration_platform.orchestration.planner import PlanNode, downstream, plan_runs

NODES = [
    PlanNode(("raw", "crm", "contacts"), "client_day"),
    PlanNode(("raw", "crm", "companies"), "client"),
    PlanNode(("staging", "stg_crm__contacts"), "none", (("raw", "crm", "contacts"),)),
    PlanNode(("marts", "dim_customers"), "none", (("staging", "stg_crm__contacts"),)),
    PlanNode(("dbt", "nicknames"), "none"),
]


def test_plan_gives_raw_days_then_reference_then_transform_with_their_tags_when_asked() -> None:
    runs = plan_runs(
        NODES, client_id="acme", start=date(2025, 3, 1), end=date(2025, 3, 7), kind="sync"
    )
    assert [(run.name, run.raw) for run in runs] == [
        ("raw_days", True),
        ("raw_reference", True),
        ("transform", False),
    ]
    days, reference, transform = runs
    assert days.keys == (("raw", "crm", "contacts"),)
    assert days.tags == {
        "integration_platform/client_id": "acme",
        "integration_platform/kind": "sync",
        "integration_platform/stage": "raw",
        "dagster/asset_partition_range_start": "acme|2025-03-01",
        "dagster/asset_partition_range_end": "acme|2025-03-07",
    }
    assert reference.tags["dagster/partition"] == "acme"
    assert "dagster/asset_partition_range_start" not in reference.tags
    assert transform.tags["integration_platform/stage"] == "transform"
    assert len(transform.keys) == 3


def test_plan_leaves_out_the_runs_it_has_no_assets_for_when_only_raw_is_given() -> None:
    runs = plan_runs(
        NODES[:1], client_id="acme", start=date(2025, 3, 1), end=date(2025, 3, 1), kind="x"
    )
    assert [run.name for run in runs] == ["raw_days"]


def test_downstream_follows_dependencies_but_leaves_unrelated_assets_when_asked() -> None:
    assert downstream(NODES, {("raw", "crm", "contacts")}) == {
        ("staging", "stg_crm__contacts"),
        ("marts", "dim_customers"),
    }
