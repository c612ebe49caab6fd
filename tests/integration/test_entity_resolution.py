"""Customer entity resolution end to end: raw tables of a small sandbox → dbt → clusters.

One warehouse for the module: the four sandbox customer endpoints (400 people, all their
records, loaded through the real loader without HTTP) plus `erp`, a source declared only in
YAML that has neither email nor phone (its records are CRM contacts under new ids). dbt runs
on a copy of the project (tests/integration/dbt_warehouse.py).
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import pytest
from dagster import AssetCheckResult, AssetCheckSeverity, build_asset_check_context

from integration_platform.assets.raw import api_resource_key
from integration_platform.assets.resources import WarehouseResource, api_resource
from integration_platform.checks.entity_resolution import (
    MIN_F1,
    MIN_FIELD_ACCURACY,
    MIN_PRECISION,
    build_entity_resolution_check,
    customer_endpoints,
)
from integration_platform.checks.resolution_scores import ground_truth, pairwise_scores
from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.http.pagination import PageRequest
from integration_platform.landing.loader import load_attempt
from integration_platform.landing.provenance import Pull
from integration_platform.landing.zone import LandingZone
from integration_platform.specs.loader import load_spec, spec_paths
from integration_platform.specs.models import SourceSpec
from integration_platform_sandbox.roster import VENDOR_URL_VARIABLES
from integration_platform_sandbox.server import Sandbox
from integration_platform_sandbox.world import SandboxCredentials, SandboxSettings, World
from tests import raw_projection
from tests.integration.dbt_warehouse import ER_SELECTION, DbtWarehouse, truth_frame

CUSTOMERS = 400
SEED = 42
ERP_SPEC = """
source: erp
kind: rest
description: A legacy ERP that knows names, birthdays and addresses, no email, no phone.
base_url: http://127.0.0.1:9
endpoints:
  customers:
    path: /customers
    records: data
    primary_key: id
    pagination: {type: single}
    entity:
      customer: {first_name: first_name, last_name: last_name, date_of_birth: birthday,
                 address_line: address.street, city: address.city, postcode: address.zip,
                 country: address.country}
"""


@dataclass
class ResolvedWarehouse(DbtWarehouse):
    specs: dict[str, SourceSpec] = field(default_factory=dict)
    truth: dict[str, str] = field(default_factory=dict)  # record_key -> entity id, erp incl.
    sandbox: Sandbox | None = None
    built: list[str] = field(default_factory=list)  # "<node name> <status>" of the first build


def _load_erp(
    connection: duckdb.DuckDBPyConnection, spec: SourceSpec, world: World, landing: Path
) -> dict[str, str]:
    """ERP records: every third CRM contact, email and phone dropped, under ERP ids."""
    crm = next(e for e in raw_projection.customer_endpoints(world) if e.source == "crm")
    roster = world.roster("crm")
    records, truth = [], {}
    for position in range(0, crm.count, 3):
        contact = crm.record(position)
        record = {
            "id": f"erp-{position:05d}",
            "first_name": contact["first_name"],
            "last_name": contact["last_name"],
            "birthday": contact["birthday"],
            "address": contact["address"],
        }
        records.append(record)
        truth[f"erp:customers:{record['id']}"] = str(roster.entity(position))
    attempt = LandingZone(landing).open_attempt("erp", "customers", None, "erp-load")
    attempt.write_page(
        1,
        orjson.dumps({"data": records}),
        records=len(records),
        url="sandbox://erp/customers",
        fetched_at=datetime.now(UTC),
        run_id="erp-load",
        provenance=Pull(request=PageRequest(path="/customers").to_checkpoint()),
    )
    attempt.mark_complete()
    load_attempt(
        connection,
        spec=spec,
        endpoint="customers",
        attempt=attempt,
        partition=None,
        run_id="erp-load",
    )
    return truth


@pytest.fixture(scope="module")
def resolved(
    tmp_path_factory: pytest.TempPathFactory, sandbox_credentials: SandboxCredentials
) -> Iterator[ResolvedWarehouse]:
    root = tmp_path_factory.mktemp("entity_resolution")
    (root / "erp.yaml").write_text(ERP_SPEC)
    specs = {
        spec.source: spec
        for spec in (load_spec(path) for path in [*spec_paths(), root / "erp.yaml"])
    }
    warehouse = DbtWarehouse.create(root, specs)
    settings = SandboxSettings(customers=CUSTOMERS, seed=SEED)
    world = World(settings, sandbox_credentials)
    with duckdb.connect(str(warehouse.path)) as connection:
        raw_projection.load_customers(connection, specs, world, root / "landing")
        erp_truth = _load_erp(connection, specs["erp"], world, root / "landing")
    sandbox = Sandbox(settings, sandbox_credentials, base_port=0).start()
    try:
        with httpx.Client(timeout=30) as client:
            truth = ground_truth(
                sandbox.urls,
                customer_endpoints({name: spec for name, spec in specs.items() if name != "erp"}),
                client,
            )
        resolved = ResolvedWarehouse(
            warehouse.path,
            warehouse.project,
            specs,
            {**dict(truth.iter_rows()), **erp_truth},
            sandbox,
        )
        resolved.built = resolved.dbt("build", *ER_SELECTION)
        yield resolved
    finally:
        sandbox.stop()


def test_clusters_match_the_ground_truth_when_all_customer_endpoints_are_resolved(
    resolved: ResolvedWarehouse,
) -> None:
    scores = pairwise_scores(resolved.resolution().clusters, truth_frame(resolved.truth))
    assert scores.records_compared == len(resolved.truth)
    assert scores.precision >= MIN_PRECISION, scores
    assert scores.f1 >= MIN_F1, scores


def test_records_without_email_or_phone_join_their_customer_when_a_source_lacks_both(
    resolved: ResolvedWarehouse,
) -> None:
    clusters = resolved.clusters()
    erp = {key: entity for key, entity in resolved.truth.items() if key.startswith("erp:")}
    customer_of_entity: dict[str, Counter[str]] = {}
    for key, entity in resolved.truth.items():
        if not key.startswith("erp:"):
            customer_of_entity.setdefault(entity, Counter())[clusters[key]] += 1
    joined = sum(clusters[key] in customer_of_entity[entity] for key, entity in erp.items())
    wrongly_joined = sum(
        any(
            clusters[key] in customers
            for other, customers in customer_of_entity.items()
            if other != entity
        )
        for key, entity in erp.items()
    )
    assert joined / len(erp) >= 0.9, (joined, len(erp))
    assert wrongly_joined == 0


def test_customer_ids_stay_the_same_when_dbt_runs_again(resolved: ResolvedWarehouse) -> None:
    before = resolved.clusters()
    resolved.dbt("run", "--select", "int_customer_clusters", "dim_customers")
    assert resolved.clusters() == before
    origins = resolved.execute(
        "select distinct customer_id_origin from intermediate.int_customer_clusters"
    )
    assert origins == [("kept",)]


def test_customer_ids_stay_the_same_when_records_arrive(resolved: ResolvedWarehouse) -> None:
    before = resolved.clusters()
    # a person nobody has seen, and a new record of a known customer whose key sorts first
    # in its cluster (the first-run rule, md5 of the smallest key, would change the id)
    known_key, known = resolved.execute(
        "select record_key, email from intermediate.int_customer_identities "
        "join intermediate.int_customer_clusters using (record_key) "
        "where int_customer_clusters.source_system = 'crm' and email is not null "
        "order by cluster_size desc, record_key limit 1"
    )[0]
    known_key = known_key.removeprefix(f"{DEMO_CLIENT_ID}:")  # as the sandbox names it
    now = datetime.now(UTC)
    for record_id, record in [
        (
            "usr_00000000a",
            {
                "email": "quentin.zebulon.unseen@example.org",
                "name": "Quentin Zebulon",
                "country": "US",
            },
        ),
        ("usr_00000000b", {"email": known, "name": None, "country": None}),
    ]:
        resolved.execute(
            "insert into raw.analytics__users (record, _source, _endpoint, _partition_key, "
            "_run_id, _fetched_at, _primary_key, _client_id) values (?, 'analytics', 'users', "
            "'__all__', 'test', ?, ?, ?)",
            json.dumps({"user_id": record_id, **record}),
            now,
            record_id,
            DEMO_CLIENT_ID,
        )
    # build: the data tests (every identity in one cluster, ...) also hold after the arrival
    resolved.dbt("build", *ER_SELECTION)
    after = resolved.clusters()
    assert {key: after[key] for key in before} == before
    assert after["analytics:users:usr_00000000a"] not in before.values()
    assert after["analytics:users:usr_00000000b"] == before[known_key]


def test_pair_scores_are_the_seeds_when_the_weights_switch_is_fixed(
    resolved: ResolvedWarehouse,
) -> None:
    with (resolved.project / "seeds" / "er_comparison_levels.csv").open() as seed:
        weights = {
            (row["comparison"], row["level"]): math.log2(
                float(row["m_probability"]) / float(row["u_probability"])
            )
            for row in csv.DictReader(seed)
        }
    try:
        resolved.dbt(
            "run", "--select", "int_customer_pair_scores", "--vars", '{"er_weights": "fixed"}'
        )
        with duckdb.connect(str(resolved.path), read_only=True) as connection:
            relation = connection.sql("select * from intermediate.int_customer_pair_scores")
            pairs = [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]
    finally:
        resolved.dbt("run", "--select", "int_customer_pair_scores")
    assert pairs
    for pair in pairs:
        levels = [
            (name.removesuffix("_level"), level)
            for name, level in pair.items()
            if name.endswith("_level") and level is not None
        ]
        # an identifier kind without rows of its own weighs like the generic `identifier`
        expected = -13 + sum(
            weights[key] if key in weights else weights[("identifier", key[1])] for key in levels
        )
        assert pair["prior_weight"] == -13
        assert float(pair["match_weight"]) == pytest.approx(expected, abs=1e-3), pair


def test_pair_scores_use_each_clients_estimates_when_the_weights_switch_is_estimated(
    resolved: ResolvedWarehouse,
) -> None:
    (mismatched,) = resolved.execute(
        "select count(*) from intermediate.int_customer_pair_scores as scores "
        "join intermediate.int_customer_comparison_weights as weights "
        "  on weights.client_id = scores.client_id and weights.comparison = 'email' "
        " and weights.level = scores.email_level "
        "where abs(scores.email_weight - weights.match_weight) > 0.001 "
        "   or abs(scores.prior_weight - weights.prior_weight) > 1e-9"
    )[0]
    assert mismatched == 0
    (estimated,) = resolved.execute(
        "select count(*) from intermediate.int_customer_comparison_weights "
        "where abs(match_weight - seed_match_weight) > 0.1"
    )[0]
    assert estimated > 0  # the estimates are the data's, not a copy of the seed


def test_dbt_data_and_unit_tests_pass_when_the_models_are_built(
    resolved: ResolvedWarehouse,
) -> None:
    passed = set(resolved.built)
    for node in (
        "dim_customers_survivorship_prefers_source_priority_then_recency",
        "dim_customers_survivorship_takes_complete_groups_and_breaks_ties_by_key",
        "stg_crm__contacts_normalizes_identity_fields",
        "stg_erp__customers_normalizes_identity_fields",
        "assert_customer_clusters_follow_matches",
        "assert_customer_pairs_within_one_client",
        "assert_customers_belong_to_one_client",
    ):
        assert f"{node} pass" in passed, sorted(passed)
    assert any(node.startswith("covers_all_int_customer_clusters_record_key") for node in passed)


def _sandbox_specs(resolved: ResolvedWarehouse) -> dict[str, SourceSpec]:
    return {name: spec for name, spec in resolved.specs.items() if name != "erp"}


def _check_resources(
    resolved: ResolvedWarehouse, urls: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """The check's resources, the API resources reading base URLs from the environment."""
    for vendor, url in urls.items():
        monkeypatch.setenv(VENDOR_URL_VARIABLES[vendor], url)
    resources: dict[str, Any] = {
        "warehouse": WarehouseResource(path=str(resolved.path), publish=False)
    }
    for name, spec in _sandbox_specs(resolved).items():
        resources[api_resource_key(name)] = api_resource(spec)
    return resources


def test_quality_check_reports_precision_recall_and_f1_when_the_sources_are_the_sandbox(
    resolved: ResolvedWarehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert resolved.sandbox is not None
    resources = _check_resources(resolved, resolved.sandbox.urls, monkeypatch)
    check = build_entity_resolution_check(_sandbox_specs(resolved))
    result = check(build_asset_check_context(resources=resources))
    assert isinstance(result, AssetCheckResult)
    assert result.passed, result.description
    assert result.severity == AssetCheckSeverity.ERROR
    f1, precision = result.metadata["f1"].value, result.metadata["precision"].value
    assert isinstance(f1, float) and f1 >= MIN_F1
    assert isinstance(precision, float) and precision >= MIN_PRECISION
    # the golden records' field accuracy against the sandbox's true people, with its target
    assert result.metadata["min_field_accuracy"].value == MIN_FIELD_ACCURACY
    for name in ("name", "email", "phone", "address", "date_of_birth"):
        accuracy = result.metadata[f"golden_{name}_accuracy"].value
        assert isinstance(accuracy, float) and 0.85 <= accuracy <= 1.0, (name, accuracy)
        assert result.metadata[f"golden_{name}_scored"].value > 0


def test_quality_check_skips_when_the_sources_are_not_the_sandbox(
    resolved: ResolvedWarehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert resolved.sandbox is not None
    nowhere = {vendor: "http://127.0.0.1:9" for vendor in resolved.sandbox.urls}
    check = build_entity_resolution_check(_sandbox_specs(resolved))
    result = check(
        build_asset_check_context(resources=_check_resources(resolved, nowhere, monkeypatch))
    )
    assert isinstance(result, AssetCheckResult)
    assert result.passed
    assert result.metadata["skipped"].value is True
    assert "Skipped" in (result.description or "")
