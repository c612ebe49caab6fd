"""The two-step raw assets (extract, then load: what runs on celery workers) against the one-step
assets they stand in for: the same definition, and the same outcome when a partition is held by
the schema contract, fails for good while others load, or fails in a way a step retry mends.

No celery here: `CELERY_BROKER_URL` set makes `platform_raw_assets` build the two-step assets,
which Dagster runs in process (the pages still cross from one step to the other through the
landing zone, the rest through the run's IO manager). Each run of a pair gets its own data dir
(warehouse, landing zone, state) on the session sandbox, and the two are compared.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    ExecuteInProcessResult,
    GraphDefinition,
    OpDefinition,
    RetryPolicy,
    materialize,
)

from integration_platform import environment
from integration_platform.assets.partitions import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    register_clients,
)
from integration_platform.assets.raw import DRIFT_CHECK, api_resource_key, raw_assets
from integration_platform.assets.raw_steps import platform_raw_assets
from integration_platform.assets.resources import (
    LandingZoneResource,
    WarehouseResource,
    api_resource,
)
from integration_platform.celery_workers import (
    BROKER_URL_VARIABLE,
    QUEUE_TAG,
    WAREHOUSE_QUEUE,
)
from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.specs.loader import load_specs
from integration_platform.specs.models import SourceSpec
from integration_platform_sandbox.chaos import ChaosSettings
from integration_platform_sandbox.roster import VENDOR_URL_VARIABLES
from integration_platform_sandbox.server import Sandbox
from tests.conftest import ChaosSwitch
from tests.demo_partitions import demo_partition

SOURCES = environment.PROJECT_ROOT / "sources"
# Never contacted: the in-process runs only read that it is set.
BROKER = "amqp://guest:guest@127.0.0.1:5672//"
# Days of the session sandbox (seed 7, 300 customers): CRM contacts per day.
LOOP_DAYS = {"2025-06-15": 1, "2025-06-16": 2, "2025-06-17": 0, "2025-06-18": 1}
# The CRM drifts from 2025-07-01 on (ChaosSettings.schema_drift_from).
DRIFT_FROM = "2025-07-01"
DRIFT_DAYS = ("2025-06-29", "2025-06-30", "2025-07-01", "2025-07-02")
# What differs between two runs of the same work: durations, folders, the run.
VARYING_METADATA = {
    "extract_seconds",
    "load_seconds",
    "lock_wait_seconds",
    "lease_wait_seconds",
    "landing_attempt",
}
ATTEMPT_NAME = re.compile(r"\d{8}T\d{12}-[0-9a-f]{8}")
ROWS = "_partition_key, _primary_key, record::VARCHAR, _record_hash"


class Pair:
    """The raw assets of some specs built both ways, each run on a data dir of its own."""

    def __init__(self, root: Path, specs: dict[str, SourceSpec], retry: RetryPolicy | None):
        self.root = root
        self.specs = specs
        self.one_step = {a.key: a for a in raw_assets(specs, retry_policy=retry)}
        with pytest.MonkeyPatch.context() as env:
            env.setenv(BROKER_URL_VARIABLE, BROKER)
            self.two_step = {a.key: a for a in platform_raw_assets(specs, retry_policy=retry)}
        self.runs = 0

    def run(
        self,
        steps: str,
        key: tuple[str, str],
        days: tuple[str, ...] | None,
        config: dict[str, Any] | None = None,
        data: Path | None = None,
    ) -> tuple[ExecuteInProcessResult, Path]:
        """Materialize `key` for the demo client's `days` (one run of the range; None: its
        reference partition) with the `one` or `two` step asset, on `data` (or a new dir)."""
        self.runs += 1
        data = data or self.root / f"{steps}-{self.runs}"
        assets = self.one_step if steps == "one" else self.two_step
        asset = assets[AssetKey(["raw", *key])]
        instance = DagsterInstance.ephemeral()
        register_clients(instance, DEMO_CLIENT_ID)
        partition: dict[str, Any] = {"partition_key": demo_partition(None)}
        if days is not None and len(days) == 1:
            partition = {"partition_key": demo_partition(days[0])}
        elif days is not None:
            partition = {
                "tags": {
                    RANGE_START_TAG: demo_partition(days[0]),
                    RANGE_END_TAG: demo_partition(days[-1]),
                }
            }
        result = materialize(
            [asset],
            resources=resources(data, self.specs),
            instance=instance,
            run_config={"ops": {asset.key.to_python_identifier(): {"config": config}}}
            if config
            else None,
            raise_on_error=False,
            **partition,
        )
        return result, data


def resources(data: Path, specs: dict[str, SourceSpec]) -> dict[str, Any]:
    return {
        "warehouse": WarehouseResource(path=str(data / "warehouse.duckdb")),
        "landing": LandingZoneResource(root=str(data / "landing"), state_root=str(data / "state")),
        **{api_resource_key(name): api_resource(spec) for name, spec in specs.items()},
    }


@pytest.fixture(scope="module")
def vendor_urls(sandbox: Sandbox) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as env:
        for vendor, url in sandbox.urls.items():
            env.setenv(VENDOR_URL_VARIABLES[vendor], url)
        yield


@pytest.fixture(scope="module")
def shipped(vendor_urls: None, tmp_path_factory: pytest.TempPathFactory) -> Pair:
    """The shipped specs, no step retries (a failure shows at once)."""
    return Pair(
        tmp_path_factory.mktemp("shipped"), load_specs(sorted(SOURCES.glob("*.yaml"))), None
    )


def spec_copy(folder: Path, source: str, *replacements: tuple[str, str]) -> Path:
    """The shipped spec of `source` with some text replaced, as a file in `folder`."""
    text = (SOURCES / f"{source}.yaml").read_text()
    for old, new in replacements:
        assert old in text, f"{old!r} is not in {source}.yaml any more"
        text = text.replace(old, new)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{source}.yaml"
    path.write_text(text)
    return path


def rows(data: Path, table: str) -> list[tuple[Any, ...]]:
    warehouse = data / "warehouse.duckdb"
    if not warehouse.exists():
        return []
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        exists = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
        ).fetchone()
        if not exists or not exists[0]:
            return []
        return sorted(connection.execute(f'SELECT {ROWS} FROM raw."{table}"').fetchall())


def materializations(result: ExecuteInProcessResult) -> dict[str | None, dict[str, Any]]:
    """Each materialization's metadata (the values two runs of the same work share), by
    partition (None: the run's, when every partition loaded)."""
    found: dict[str | None, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        found[materialization.partition] = {
            k: v.value for k, v in materialization.metadata.items() if k not in VARYING_METADATA
        }
    return found


def check_outcome(result: ExecuteInProcessResult) -> dict[str, Any]:
    """The drift check's evaluation, folders left out."""
    evaluations = [e for e in result.get_asset_check_evaluations() if e.check_name == DRIFT_CHECK]
    if not evaluations:
        return {}
    [evaluation] = evaluations
    metadata: dict[str, Any] = {k: v.value for k, v in evaluation.metadata.items()}
    for held in metadata.get("held", {}).values():
        held.pop("landing_attempt")
    return {
        "passed": evaluation.passed,
        "severity": evaluation.severity,
        "description": evaluation.description,
        "metadata": metadata,
    }


def failure(result: ExecuteInProcessResult) -> dict[str, Any]:
    """The step failure the run ended with: its text and metadata (folders left out)."""
    failures = result.get_step_failure_events()
    if not failures:
        return {}
    [event] = failures
    data = event.event_specific_data.user_failure_data  # type: ignore[union-attr]
    error = event.event_specific_data.error  # type: ignore[union-attr]
    text = data.description if data is not None else f"{error.cls_name}: {error.message}"  # type: ignore[union-attr]
    metadata = {k: v.value for k, v in (data.metadata if data is not None else {}).items()}
    metadata.pop("landing_attempt", None)
    return {"text": text, "metadata": metadata}


def outcome(result: ExecuteInProcessResult, data: Path, table: str) -> dict[str, Any]:
    """What a user sees of a run: success, materializations, check, failure and rows."""
    return {
        "success": result.success,
        "materializations": materializations(result),
        "check": check_outcome(result),
        "failure": failure(result),
        "rows": rows(data, table),
    }


def without_folders(value: Any, *folders: Path) -> str:
    """`value` as JSON text, the data dirs and attempt folder names replaced by placeholders."""
    text = json.dumps(value, default=str)
    for folder in folders:
        text = text.replace(str(folder), "<data>")
    return ATTEMPT_NAME.sub("<attempt>", text)


# -- the definition --------------------------------------------------------------------------


def test_two_step_assets_present_the_one_step_definition_when_built_for_workers(
    shipped: Pair,
) -> None:
    assert shipped.two_step.keys() == shipped.one_step.keys()
    assert len(shipped.one_step) == sum(len(s.endpoints) for s in shipped.specs.values())
    for key, one in shipped.one_step.items():
        two = shipped.two_step[key]
        where = key.to_user_string()
        assert isinstance(two.node_def, GraphDefinition), where
        assert isinstance(one.node_def, OpDefinition), where
        [one_spec], [two_spec] = one.specs, two.specs
        assert two_spec == one_spec, where
        assert list(two.check_specs) == list(one.check_specs), where
        [check] = two.check_specs
        assert check.name == DRIFT_CHECK and check.blocking, where
        assert two.partitions_def == one.partitions_def, where
        assert two.backfill_policy == one.backfill_policy, where
        assert two.metadata_by_key == one.metadata_by_key, where
        assert two.group_names_by_key == one.group_names_by_key, where
        assert two.tags_by_key == one.tags_by_key, where
        assert two.descriptions_by_key == one.descriptions_by_key, where
        assert two.automation_conditions_by_key == one.automation_conditions_by_key, where
        assert two_spec.kinds == {shipped.specs[key.path[1]].kind, "duckdb"}, where
        assert two_spec.freshness_policy == one_spec.freshness_policy, where
        assert two.required_resource_keys == one.required_resource_keys, where
        ops = {
            node.name: node.definition
            for node in two.node_def.nodes
            if isinstance(node.definition, OpDefinition)
        }
        name = key.to_python_identifier()
        extract, load = ops[f"{name}_extract"], ops[f"{name}_load"]
        assert extract.pool == one.op.pool == f"api_{key.path[1]}", where
        assert load.tags.get(QUEUE_TAG) == WAREHOUSE_QUEUE, where
        assert QUEUE_TAG not in extract.tags, where
        assert extract.retry_policy == load.retry_policy == one.op.retry_policy, where


# -- a partition held by the schema contract ---------------------------------------------------


def test_held_partitions_keep_their_rows_and_fail_the_run_alike_when_two_steps_reload_drift(
    shipped: Pair, chaos: ChaosSwitch
) -> None:
    key = ("crm", "contacts")
    first = {steps: shipped.run(steps, key, DRIFT_DAYS) for steps in ("one", "two")}
    for steps, (result, _) in first.items():
        assert result.success, (steps, failure(result))
    before = {steps: rows(data, "crm__contacts") for steps, (_, data) in first.items()}
    assert before["one"] == before["two"]
    assert {row[0] for row in before["one"]} >= {DRIFT_FROM}

    chaos("crm", ChaosSettings(schema_drift_from=DRIFT_FROM))
    after = {
        steps: shipped.run(steps, key, DRIFT_DAYS, {"full_refresh": True}, data)
        for steps, (_, data) in first.items()
    }

    seen = {
        steps: outcome(result, data, "crm__contacts") for steps, (result, data) in after.items()
    }
    one, two = seen["one"], seen["two"]
    assert not one["success"] and not two["success"]
    drifted = {demo_partition(day) for day in DRIFT_DAYS if day >= DRIFT_FROM}
    assert set(one["check"]["metadata"]["held"]) == drifted
    assert set(one["materializations"]) == {demo_partition(d) for d in DRIFT_DAYS} - drifted
    assert "accept_drift" in one["failure"]["text"]
    for part in ("materializations", "check", "rows"):
        assert two[part] == one[part], part
    folders = (after["one"][1], after["two"][1])
    assert without_folders(two["failure"], *folders) == without_folders(one["failure"], *folders)
    assert two["rows"] == before["two"], "held partitions keep their rows, the others reload"


# -- a partition that fails for good while others load -----------------------------------------


@pytest.fixture(scope="module")
def paged_one_by_one(vendor_urls: None, tmp_path_factory: pytest.TempPathFactory) -> Pair:
    """The CRM in pages of one contact, so that a day of two contacts has a second page."""
    folder = tmp_path_factory.mktemp("paged_one_by_one")
    page_of_one = (
        "page_size: 200, size_param: limit}\n    incremental",
        "page_size: 1, size_param: limit}\n    incremental",
    )
    return Pair(folder, load_specs([spec_copy(folder / "specs", "crm", page_of_one)]), None)


def test_other_partitions_load_and_the_run_fails_alike_when_one_partition_fails_for_good(
    paged_one_by_one: Pair, chaos: ChaosSwitch
) -> None:
    # A buggy API: page 2 hands back the cursor it was asked with (a loop, never retried).
    chaos("crm", ChaosSettings(repeat_cursor_at_page=2))
    seen = {
        steps: outcome(
            *paged_one_by_one.run(steps, ("crm", "contacts"), tuple(LOOP_DAYS)), "crm__contacts"
        )
        for steps in ("one", "two")
    }

    one, two = seen["one"], seen["two"]
    failed = {demo_partition(day) for day, contacts in LOOP_DAYS.items() if contacts > 1}
    assert not one["success"] and not two["success"]
    assert set(one["failure"]["metadata"]["failed_partitions"]) == failed
    assert set(one["materializations"]) == {demo_partition(d) for d in LOOP_DAYS} - failed
    assert "PaginationLoopError" in one["failure"]["text"] or "cursor" in one["failure"]["text"]
    assert {row[0] for row in one["rows"]} == {
        day for day, contacts in LOOP_DAYS.items() if 0 < contacts < 2
    }
    for part in ("materializations", "check", "failure", "rows"):
        assert two[part] == one[part], part


# -- a retriable failure: the step retry resumes the landed pages --------------------------------

RESUME_PAGES = 6  # pages landed before the API fails


@pytest.fixture(scope="module")
def retried(vendor_urls: None, tmp_path_factory: pytest.TempPathFactory) -> Pair:
    """Billing's customers in pages of 20 (10 pages), one try per request, and a step retry
    at once: the run retries the step where the HTTP engine gave up."""
    folder = tmp_path_factory.mktemp("retried")
    billing = spec_copy(
        folder / "specs",
        "billing",
        (
            "retry: {max_attempts: 8, initial_delay_seconds: 0.2, max_delay_seconds: 10}",
            "retry: {max_attempts: 1, initial_delay_seconds: 0.05, max_delay_seconds: 0.1}",
        ),
        (
            "path: /v1/customers\n    records: data\n    primary_key: id\n"
            "    pagination: {type: offset, offset_param: offset, limit_param: limit, "
            "page_size: 200",
            "path: /v1/customers\n    records: data\n    primary_key: id\n"
            "    pagination: {type: offset, offset_param: offset, limit_param: limit, "
            "page_size: 20",
        ),
    )
    return Pair(folder, load_specs([billing]), RetryPolicy(max_retries=1, delay=0))


def test_step_retry_resumes_the_landed_pages_and_loads_every_row_once_when_the_api_fails_a_while(
    retried: Pair, chaos: ChaosSwitch
) -> None:
    key = ("billing", "customers")
    clean, clean_data = retried.run("one", key, None)
    assert clean.success, failure(clean)
    expected = rows(clean_data, "billing__customers")
    assert len(expected) == len({row[1] for row in expected}) > 20 * (RESUME_PAGES + 1)

    seen = {}
    for steps in ("one", "two"):
        # Pages land, then a 503 spends the request's one try.
        chaos("billing", script=[None] * RESUME_PAGES + ["503"])
        result, data = retried.run(steps, key, None)
        seen[steps] = outcome(result, data, "billing__customers")
        [retry] = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        assert steps == "one" or str(retry.step_key).endswith("_extract"), retry.step_key

    one, two = seen["one"], seen["two"]
    assert one["success"] and two["success"]
    assert one["rows"] == expected, "the resumed run lost or doubled customers"
    [metadata] = one["materializations"].values()
    assert metadata["resumed_after_pages"] == RESUME_PAGES
    assert metadata["rows_loaded"] == len(expected)
    for part in ("materializations", "check", "rows"):
        assert two[part] == one[part], part
