"""Entity resolution without email or phone, declared in YAML only: the sandbox's registry variant.

The clinic and insurer vendors run as real HTTP servers on free loopback ports; Dagster
materializes their raw assets (real extraction, landing and load) into a temporary DuckDB file;
dbt builds identities → blocking → scores → clusters → golden records on a copy of the project.
Their specs (sources_registry/) map names, dates of birth in three formats, an address composed
from street number and street, and a national id. The SaaS specs are loaded too, because the dbt
project's marts need their sources declared; their customer tables are empty (extracted nothing),
so every record resolved here is a registry record. A third source, `pharmacy`, declared only in
this test, adds an identifier kind of its own (`prescription_ref`) to show that any identifier
compares on the generic `identifier` levels.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import pytest
from dagster import (
    AssetCheckResult,
    AssetKey,
    DagsterInstance,
    build_asset_check_context,
    materialize,
)

from integration_platform import environment
from integration_platform.assets.partitions import register_clients
from integration_platform.assets.raw import api_resource_key, raw_assets
from integration_platform.assets.resources import (
    LandingZoneResource,
    WarehouseResource,
    api_resource,
)
from integration_platform.checks.entity_resolution import (
    build_entity_resolution_check,
    customer_endpoints,
)
from integration_platform.checks.resolution_scores import (
    ResolutionQuality,
    ground_truth,
    resolution_quality,
)
from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.http.pagination import PageRequest
from integration_platform.landing.loader import load_attempt
from integration_platform.landing.provenance import Pull
from integration_platform.landing.zone import LandingZone
from integration_platform.specs.loader import load_spec, spec_paths
from integration_platform.specs.models import SourceSpec
from integration_platform_sandbox.roster import REGISTRY_VENDORS, VENDOR_URL_VARIABLES, VENDORS
from integration_platform_sandbox.server import Sandbox
from integration_platform_sandbox.world import SandboxCredentials, SandboxSettings, World
from tests import raw_projection
from tests.integration.dbt_warehouse import ER_SELECTION, DbtWarehouse, truth_frame

CUSTOMERS = 600
SEED = 42
REGISTRY_SPECS = environment.PROJECT_ROOT / "sources_registry"
# The item's targets: pairwise F1 across the two sources and for duplicates inside one, and
# the share of true pairs blocking lets through.
MIN_ACROSS_F1, MIN_WITHIN_F1, MIN_PAIR_COMPLETENESS, MIN_PRECISION = 0.99, 0.95, 0.99, 0.99
PHARMACY_SPEC = """
source: pharmacy
kind: rest
description: A pharmacy's customers, declared in YAML only; identifiers of two kinds.
base_url: http://127.0.0.1:9
endpoints:
  customers:
    path: /customers
    records: data
    primary_key: id
    entity:
      customer:
        first_name: first
        last_name: last
        date_of_birth: {path: dob, format: "%d.%m.%Y"}
        identifiers: {national_id: nid, prescription_ref: rx}
"""
# (id, clinic patient position, prescription ref): one person twice with refs one
# transposition apart, another twice with different refs
PHARMACY_RECORDS = [
    ("ph-1", 0, "RX-1001"),
    ("ph-2", 0, "RX-1010"),
    ("ph-3", 1, "RX-2001"),
    ("ph-4", 1, "RX-7777"),
]


@dataclass
class RegistryWarehouse(DbtWarehouse):
    truth: dict[str, str]  # clinic and insurer record_key -> sandbox entity id
    sandbox: Sandbox
    specs: dict[str, SourceSpec]
    built: list[str]

    def quality(self) -> ResolutionQuality:
        resolution = self.resolution()
        return resolution_quality(
            resolution.clusters, truth_frame(self.truth), resolution.candidate_pairs
        )

    def staged(self, model: str, *columns: str) -> list[tuple[Any, ...]]:
        """`columns` of a staging model beside the raw record's JSON, by record key."""
        return self.execute(
            f"select {', '.join(columns)}, raw.record from staging.{model} as staged "
            f"join raw.{model.removeprefix('stg_')} as raw "
            "on staged.source_record_id = raw._primary_key order by staged.record_key"
        )


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory, sandbox_credentials: SandboxCredentials
) -> Iterator[RegistryWarehouse]:
    root = tmp_path_factory.mktemp("entity_resolution_registry")
    (root / "pharmacy.yaml").write_text(PHARMACY_SPEC)
    specs = {
        spec.source: spec
        for spec in (
            load_spec(path)
            for path in [*spec_paths(), *spec_paths(str(REGISTRY_SPECS)), root / "pharmacy.yaml"]
        )
    }
    warehouse = DbtWarehouse.create(root, specs)
    settings = SandboxSettings(customers=CUSTOMERS, seed=SEED)
    world = World(settings, sandbox_credentials)
    with duckdb.connect(str(warehouse.path)) as connection:
        # the SaaS customer tables exist but hold nothing: only registry records resolve
        raw_projection.load_customers(
            connection,
            {name: specs[name] for name in VENDORS},
            world,
            root / "landing",
            only=lambda _: range(0),
        )
        _load_pharmacy(connection, specs["pharmacy"], world, root / "landing")
    sandbox = Sandbox(settings, sandbox_credentials, base_port=0, vendors=REGISTRY_VENDORS).start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            for vendor, url in sandbox.urls.items():
                patch.setenv(VENDOR_URL_VARIABLES[vendor], url)
            _extract(root, warehouse.path, {name: specs[name] for name in REGISTRY_VENDORS})
            with httpx.Client(timeout=30) as client:
                truth = ground_truth(
                    sandbox.urls,
                    customer_endpoints({name: specs[name] for name in REGISTRY_VENDORS}),
                    client,
                )
            built = warehouse.dbt("build", *ER_SELECTION)
            yield RegistryWarehouse(
                warehouse.path, warehouse.project, dict(truth.iter_rows()), sandbox, specs, built
            )
    finally:
        sandbox.stop()


def _extract(root: Path, warehouse: Path, specs: dict[str, SourceSpec]) -> None:
    """Materialize the registry's raw assets as a user's run would, through HTTP."""
    resources: dict[str, Any] = {
        "warehouse": WarehouseResource(path=str(warehouse), publish=False),
        "landing": LandingZoneResource(root=str(root / "landing"), state_root=str(root / "state")),
        **{api_resource_key(name): api_resource(spec) for name, spec in specs.items()},
    }
    assets = raw_assets(specs, retry_policy=None)
    assert {asset.key for asset in assets} == {
        AssetKey(["raw", "clinic", "patients"]),
        AssetKey(["raw", "insurer", "members"]),
    }
    # the registry's endpoints are reference data: one partition per client, the demo's here
    instance = DagsterInstance.ephemeral()
    register_clients(instance, DEMO_CLIENT_ID)
    result = materialize(
        assets,
        resources=resources,
        partition_key=DEMO_CLIENT_ID,
        instance=instance,
        raise_on_error=False,
    )
    assert result.success, [event.message for event in result.get_step_failure_events()]


def _load_pharmacy(
    connection: duckdb.DuckDBPyConnection, spec: SourceSpec, world: World, landing: Path
) -> None:
    """Pharmacy records copied from clinic patients' true identities, with their own refs."""
    roster, population = world.roster("clinic"), world.population
    records = []
    for record_id, position, rx in PHARMACY_RECORDS:
        person = population.person(roster.entity(position))
        records.append(
            {
                "id": record_id,
                "first": person.first_name,
                "last": person.last_name,
                "dob": person.date_of_birth.strftime("%d.%m.%Y"),
                "nid": person.national_id,
                "rx": rx,
            }
        )
    attempt = LandingZone(landing).open_attempt("pharmacy", "customers", None, "pharmacy-load")
    attempt.write_page(
        1,
        orjson.dumps({"data": records}),
        records=len(records),
        url="sandbox://pharmacy/customers",
        fetched_at=datetime.now(UTC),
        run_id="pharmacy-load",
        provenance=Pull(request=PageRequest(path="/customers").to_checkpoint()),
    )
    attempt.mark_complete()
    load_attempt(
        connection,
        spec=spec,
        endpoint="customers",
        attempt=attempt,
        partition=None,
        run_id="pharmacy-load",
    )


def test_registry_records_resolve_across_and_within_sources_when_neither_has_email_or_phone(
    registry: RegistryWarehouse,
) -> None:
    quality = registry.quality()
    assert quality.overall.records_compared == len(registry.truth)
    assert quality.across_sources.true_pairs > 200 and quality.within_source.true_pairs > 20
    assert quality.overall.precision >= MIN_PRECISION, quality.summary()
    assert quality.across_sources.f1 >= MIN_ACROSS_F1, quality.summary()
    assert quality.within_source.f1 >= MIN_WITHIN_F1, quality.summary()


def test_blocking_keeps_nearly_every_true_pair_without_a_cross_join_when_ids_are_noisy(
    registry: RegistryWarehouse,
) -> None:
    quality = registry.quality()
    assert quality.pair_completeness >= MIN_PAIR_COMPLETENESS, quality.summary()
    records = len(registry.truth)
    assert quality.candidate_pairs < 3 * records, "blocking should stay near linear"
    # national ids alone would miss the pairs whose ids are missing or mistyped
    found_by_id_only = registry.execute(
        "select count(*) from intermediate.int_customer_candidate_pairs "
        "where blocking_rules = ['identifier']"
    )[0][0]
    assert found_by_id_only < quality.true_candidate_pairs / 2


def test_dates_of_birth_parse_in_each_declared_format_when_sources_write_them_differently(
    registry: RegistryWarehouse,
) -> None:
    seen: dict[str, int] = {}
    for model, path, parse in (
        ("stg_clinic__patients", "date_of_birth", _clinic_date),
        ("stg_insurer__members", "born", _epoch_date),
    ):
        for parsed, record in registry.staged(model, "date_of_birth"):
            raw = orjson.loads(record)[path]
            expected, kind = parse(raw)
            assert parsed == expected, (model, raw, parsed)
            seen[kind] = seen.get(kind, 0) + 1
    # every form occurs in the data, so none of the cases above passed for want of rows
    assert {"yyyymmdd", "dd/mm/yyyy", "not a date", "missing", "epoch before 1970"} <= set(seen)


def _clinic_date(raw: str | None) -> tuple[date | None, str]:
    if raw is None:
        return None, "missing"
    for format_, kind in (("%Y%m%d", "yyyymmdd"), ("%d/%m/%Y", "dd/mm/yyyy")):
        try:
            return datetime.strptime(raw, format_).date(), kind
        except ValueError:
            continue
    return None, "not a date"  # e.g. 19151131 after a keying slip: null, not an error


def _epoch_date(raw: int | None) -> tuple[date | None, str]:
    if raw is None:
        return None, "missing"
    return date(1970, 1, 1) + timedelta(days=raw // 86400), (
        "epoch before 1970" if raw < 0 else "epoch"
    )


def test_address_line_joins_street_number_and_street_when_the_spec_concatenates_them(
    registry: RegistryWarehouse,
) -> None:
    rows = registry.staged("stg_clinic__patients", "address_line")
    kinds = set()
    for address_line, record in rows:
        raw = orjson.loads(record)
        number, street = raw["street_number"], raw["address_1"]
        if number and street:
            assert address_line.startswith(f"{number} "), (address_line, raw)
            kinds.add("both")
        elif street:  # a missing part is skipped, not a leading separator
            assert address_line is not None and not address_line[0].isdigit(), (address_line, raw)
            kinds.add("street only")
    assert kinds == {"both", "street only"}
    [(house_numbers_read,)] = registry.execute(
        "select count(*) from intermediate.int_customer_identities_enriched "
        "where source_system = 'insurer' and address_number is not null"
    )
    assert house_numbers_read > 0.9 * sum(key.startswith("insurer:") for key in registry.truth)


def test_national_ids_compare_exact_fuzzy_or_different_when_one_side_has_a_typo(
    registry: RegistryWarehouse,
) -> None:
    rows = registry.execute(
        "select l.identifiers['national_id'], r.identifiers['national_id'], "
        "national_id_level, national_id_weight, reasons "
        "from intermediate.int_customer_pair_scores as scores "
        "join intermediate.int_customer_identities_enriched as l on l.record_key = left_key "
        "join intermediate.int_customer_identities_enriched as r on r.record_key = right_key"
    )
    levels: dict[str | None, list[float]] = {}
    for left, right, level, weight, reasons in rows:
        levels.setdefault(level, []).append(weight)
        if level is None:
            assert left is None or right is None
            assert weight == 0 and "national_id" not in reasons
        elif level == "exact":
            assert left == right
        elif level == "fuzzy":
            assert left != right and _one_edit_apart(left, right), (left, right)
        else:
            assert level == "different" and not _one_edit_apart(left, right), (left, right)
        if level is not None:
            assert re.search(rf"national_id {level} \([+-]", reasons), reasons
    assert {"exact", "fuzzy", None} <= set(levels)
    assert min(levels["exact"]) > min(levels["fuzzy"]) > 0


def _one_edit_apart(a: str, b: str) -> bool:
    """One substitution, or two neighbours swapped."""
    if len(a) != len(b):
        return False
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    return len(diff) == 1 or (
        len(diff) == 2
        and diff[1] == diff[0] + 1
        and a[diff[0]] == b[diff[1]]
        and a[diff[1]] == b[diff[0]]
    )


def test_identifier_kinds_without_levels_of_their_own_weigh_as_generic_identifiers_when_declared(
    registry: RegistryWarehouse,
) -> None:
    generic = dict(
        registry.execute(
            "select level, round(log2(m_probability / u_probability), 3) "
            "from reference.er_comparison_levels where comparison = 'identifier'"
        )
    )
    # the kind's estimates start from the generic rows, and the pairs weigh its estimates
    estimates = {
        level: (seed_weight, weight)
        for level, seed_weight, weight in registry.execute(
            "select level, round(seed_match_weight, 3), round(match_weight, 3) "
            "from intermediate.int_customer_comparison_weights "
            "where client_id = 'demo' and comparison = 'prescription_ref'"
        )
    }
    assert {level: seed for level, (seed, _) in estimates.items()} == generic
    scored = {
        (left, right): (level, weight)
        for left, right, level, weight in registry.execute(
            "select left_key, right_key, prescription_ref_level, prescription_ref_weight::double "
            "from intermediate.int_customer_pair_scores where left_key like 'demo:pharmacy:%' "
            "and right_key like 'demo:pharmacy:%'"
        )
    }
    assert scored[("demo:pharmacy:customers:ph-1", "demo:pharmacy:customers:ph-2")] == (
        "fuzzy",
        estimates["fuzzy"][1],
    )
    assert scored[("demo:pharmacy:customers:ph-3", "demo:pharmacy:customers:ph-4")] == (
        "different",
        estimates["different"][1],
    )
    clusters = registry.clusters()
    assert clusters["pharmacy:customers:ph-1"] == clusters["pharmacy:customers:ph-2"]


def test_golden_record_carries_the_national_id_when_its_records_have_one(
    registry: RegistryWarehouse,
) -> None:
    rows = registry.execute(
        "select identifiers['national_id'], record_count from marts.dim_customers"
    )
    with_id = [national_id for national_id, _ in rows if national_id is not None]
    assert len(with_id) > 0.9 * len(rows)
    assert all(re.fullmatch(r"[0-9]{9}", national_id) for national_id in with_id)


def test_dbt_unit_tests_of_the_new_mapping_forms_pass_when_the_models_are_built(
    registry: RegistryWarehouse,
) -> None:
    passed = set(registry.built)
    for node in (
        "stg_clinic__patients_normalizes_identity_fields",
        "stg_insurer__members_normalizes_identity_fields",
        "stg_pharmacy__customers_normalizes_identity_fields",
        "assert_customer_clusters_follow_matches",
    ):
        assert f"{node} pass" in passed, sorted(passed)


def test_quality_check_reports_across_within_and_completeness_when_the_registry_is_served(
    registry: RegistryWarehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry_specs = {name: registry.specs[name] for name in REGISTRY_VENDORS}
    for vendor, url in registry.sandbox.urls.items():
        monkeypatch.setenv(VENDOR_URL_VARIABLES[vendor], url)
    resources: dict[str, Any] = {
        "warehouse": WarehouseResource(path=str(registry.path), publish=False),
        **{api_resource_key(name): api_resource(spec) for name, spec in registry_specs.items()},
    }
    check = build_entity_resolution_check(registry_specs)
    result = check(build_asset_check_context(resources=resources))
    assert isinstance(result, AssetCheckResult)
    assert result.passed, result.description
    metadata = {name: value.value for name, value in result.metadata.items()}
    assert metadata["across_sources_f1"] >= MIN_ACROSS_F1
    assert metadata["within_source_f1"] >= MIN_WITHIN_F1
    assert metadata["pair_completeness"] >= MIN_PAIR_COMPLETENESS
    assert "across sources" in (result.description or "")
    assert "pair completeness" in (result.description or "")
