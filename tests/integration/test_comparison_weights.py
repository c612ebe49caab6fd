"""The weights' estimation (int_customer_comparison_weights) on hand-built populations, in real
dbt on DuckDB: the enriched identities are written directly, then blocking, the comparisons and
the estimation run as in a build.

Client `em`: 2,000 people, every second one with a duplicate record that keeps the email 80% of
the time and the first name 90% (the last name and birth date always), names drawn from 20
first and 25 last names, nothing else known; the m and u the EM should find are counted from
the records themselves. Client `tiny`:
three records of one person. Client `same`: forty identical records (every pair agrees on all).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import duckdb
import pytest
from dagster import Output

from integration_platform.specs.loader import load_spec, spec_paths
from integration_platform.transform.comparison_weights import (
    WEIGHTS_MODEL,
    WEIGHTS_QUERY,
    weights_metadata,
    with_weights_metadata,
)
from tests.integration.dbt_warehouse import DbtWarehouse

PEOPLE = 2000
FIRST_NAMES = [
    "anna", "boris", "carla", "dmitri", "elena", "felix", "greta", "hugo", "irina", "jonas",
    "karl", "lena", "marco", "nina", "oscar", "paula", "quentin", "rosa", "stefan", "tanja",
]  # fmt: skip
LAST_NAMES = [
    "abbott", "baker", "castillo", "dunbar", "eriksen", "fischer", "garcia", "horvat", "ivanov",
    "jensen", "kowalski", "lopez", "muller", "novak", "olsen", "petrov", "quist", "rossi",
    "schmidt", "tanaka", "ueda", "vargas", "weber", "xiang", "yilmaz",
]  # fmt: skip
MODELS = ["int_customer_candidate_pairs", "int_customer_pair_comparisons", WEIGHTS_MODEL]
# λ of the `em` client is about 2^-12; the default cap (2^-13) would hide what EM estimates
UNCAPPED = {"er_max_prior_match_weight": 0}
BOUNDS = (1e-9, 1 - 1e-9)
SEED_PRIOR = 1 / (1 + 2**13)  # er_prior_match_weight -13, the prior the seed was set with

IDENTITIES = f"""
create schema if not exists intermediate;
create or replace table intermediate.int_customer_identities_enriched as
with people as (
    select
        i,
        {FIRST_NAMES}[1 + (hash(i, 'first') % {len(FIRST_NAMES)})::integer] as first_name,
        {LAST_NAMES}[1 + (hash(i, 'last') % {len(LAST_NAMES)})::integer] as last_name,
        'u' || left(md5(i::varchar), 10) || '@mail.org' as email,
        date '1940-01-01' + (hash(i, 'born') % 20000)::integer as date_of_birth
    from range({PEOPLE}) as people(i)
),
records as (
    select 'em' as client_id, i, 0 as copy, email, first_name, last_name, date_of_birth
    from people
    union all
    select 'em', i, 1,
           case when hash(i, 'email') % 10 < 8 then email
                else 'v' || left(md5(i || 'moved'), 10) || '@other.org' end,
           case when hash(i, 'keep') % 10 < 9 then first_name
                else {FIRST_NAMES}[1 + (hash(i, 'other') % {len(FIRST_NAMES)})::integer] end,
           last_name,
           date_of_birth
    from people
    where i % 2 = 0
    union all
    select 'tiny', 0, copy, 'tiny@mail.org', 'anna', 'abbott', date '1980-05-01'
    from range(3) as copies(copy)
    union all
    select 'same', 0, copy, 'same@mail.org', 'boris', 'baker', date '1975-02-03'
    from range(40) as copies(copy)
)
select
    client_id,
    client_id || ':crm:contacts:' || i || '-' || copy as record_key,
    'crm' as source_system,
    'contacts' as source_endpoint,
    i || '-' || copy as source_record_id,
    email,
    count(*) over (partition by client_id, email) as email_record_count,
    split_part(email, '@', 1) as email_local,
    split_part(email, '@', 2) as email_domain,
    null::varchar as phone,
    null::bigint as phone_record_count,
    first_name,
    first_name as first_name_canonical,
    [first_name] as first_name_forms,
    left(first_name, 1) as first_initial,
    last_name,
    false as is_lone_name,
    last_name as last_name_key,
    first_name || ' ' || last_name as full_name,
    date_of_birth,
    null::varchar as company,
    null::varchar as company_key,
    null::varchar as address_line,
    null::varchar as address_number,
    null::varchar as address_street,
    null::varchar as city,
    null::varchar as postcode,
    null::varchar as state,
    null::varchar as country,
    null::varchar as external_id,
    map()::map(varchar, varchar) as identifiers,
    map()::map(varchar, bigint) as identifier_record_counts,
    null::timestamptz as source_updated_at,
    now() as fetched_at,
    now() as recency_at
from records
"""

# What EM should recover, counted from the records: m over the duplicate pairs (one person), u
# over every pair of two people, λ = duplicate pairs / all pairs.
TRUTH = """
with records as (
    select *, split_part(source_record_id, '-', 1) as person
    from intermediate.int_customer_identities_enriched
    where client_id = 'em'
),
pairs as (
    select l.person = r.person as one_person,
           l.email = r.email as same_email,
           l.first_name = r.first_name as same_first_name,
           l.last_name = r.last_name as same_last_name
    from records as l
    join records as r on l.record_key < r.record_key
)
select
    avg(same_email::int) filter (where one_person) as m_email_exact,
    avg(same_first_name::int) filter (where one_person) as m_first_name_exact,
    avg(same_first_name::int) filter (where not one_person) as u_first_name_exact,
    avg(same_last_name::int) filter (where not one_person) as u_last_name_exact,
    avg(one_person::int) as prior_match_probability
from pairs
"""


@dataclass
class Estimates:
    warehouse: DbtWarehouse

    def rows(self) -> list[dict[str, Any]]:
        with duckdb.connect(str(self.warehouse.path), read_only=True) as connection:
            relation = connection.sql(f"select * from intermediate.{WEIGHTS_MODEL} order by all")
            return [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]

    def level(self, client: str, comparison: str, level: str) -> dict[str, Any]:
        (row,) = [
            r
            for r in self.rows()
            if (r["client_id"], r["comparison"], r["level"]) == (client, comparison, level)
        ]
        return row

    def run(self, **dbt_vars: Any) -> None:
        self.warehouse.dbt(
            "run", "--select", *MODELS, "--vars", json.dumps({**UNCAPPED, **dbt_vars})
        )


@pytest.fixture(scope="module")
def estimates(tmp_path_factory: pytest.TempPathFactory) -> Estimates:
    root = tmp_path_factory.mktemp("comparison_weights")
    specs = {spec.source: spec for spec in (load_spec(path) for path in spec_paths())}
    warehouse = DbtWarehouse.create(root, specs)
    with duckdb.connect(str(warehouse.path)) as connection:
        connection.execute(IDENTITIES)
    warehouse.dbt("seed", "--select", "er_comparison_levels")
    estimates = Estimates(warehouse)
    estimates.run()
    return estimates


def _truth(warehouse: DbtWarehouse) -> dict[str, float]:
    with duckdb.connect(str(warehouse.path), read_only=True) as connection:
        relation = connection.sql(TRUTH)
        (row,) = relation.fetchall()
        return dict(zip(relation.columns, row, strict=True))


def test_em_recovers_the_m_u_and_prior_of_the_population_when_a_client_has_enough_records(
    estimates: Estimates,
) -> None:
    truth = _truth(estimates.warehouse)
    email = estimates.level("em", "email", "exact")
    first_name = estimates.level("em", "first_name", "exact")
    last_name = estimates.level("em", "last_name", "exact")
    assert email["m_probability"] == pytest.approx(truth["m_email_exact"], abs=0.03)
    assert first_name["m_probability"] == pytest.approx(truth["m_first_name_exact"], abs=0.03)
    assert first_name["u_probability"] == pytest.approx(truth["u_first_name_exact"], rel=0.15)
    assert last_name["u_probability"] == pytest.approx(truth["u_last_name_exact"], rel=0.15)
    assert email["prior_match_probability"] == pytest.approx(
        truth["prior_match_probability"], rel=0.15
    )
    assert email["em_last_change"] < 0.01  # what the tenth iteration still moved


def test_estimates_stay_put_when_em_runs_three_times_as_long(estimates: Estimates) -> None:
    before = {(r["client_id"], r["comparison"], r["level"]): r for r in estimates.rows()}
    try:
        estimates.run(er_em_iterations=30)
        after = estimates.rows()
    finally:
        estimates.run()
    for row in after:
        earlier = before[(row["client_id"], row["comparison"], row["level"])]
        assert row["match_weight"] == pytest.approx(earlier["match_weight"], abs=0.05), row
        assert row["prior_weight"] == pytest.approx(earlier["prior_weight"], abs=0.05), row
    assert max(row["em_last_change"] for row in after) < 0.002


def test_a_client_with_three_records_keeps_the_seed_weights_when_it_has_too_few_to_estimate(
    estimates: Estimates,
) -> None:
    tiny = [row for row in estimates.rows() if row["client_id"] == "tiny"]
    assert tiny
    for row in tiny:
        assert row["m_probability"] == pytest.approx(row["seed_m_probability"], abs=0.05), row
        scaled_u = row["seed_u_probability"] * row["prior_match_probability"] / SEED_PRIOR
        if scaled_u < 0.5:
            # an agreement says with the client's prior what it says with the seed's (-13):
            # the u it cannot measure is the seed's, scaled with the client's prior
            alone = row["match_weight"] + row["prior_weight"]
            assert alone == pytest.approx(row["seed_match_weight"] - 13, abs=0.5), row
        else:  # a common level (u near 1, so kept below 1) weighs about what the seed's does
            assert row["match_weight"] == pytest.approx(row["seed_match_weight"], abs=1), row


def test_every_estimate_stays_bounded_and_finite_when_all_of_a_clients_pairs_are_identical(
    estimates: Estimates,
) -> None:
    same = [row for row in estimates.rows() if row["client_id"] == "same"]
    assert same
    low, high = BOUNDS
    for row in same:
        for name in ("m_probability", "u_probability", "prior_match_probability"):
            assert low <= row[name] <= high, row
        for name in ("match_weight", "prior_weight", "em_last_change"):
            assert math.isfinite(row[name]), row
        assert row["em_last_change"] < 1e-3, row


def test_the_weights_metadata_lists_every_clients_levels_and_charts_them_when_built(
    estimates: Estimates,
) -> None:
    with duckdb.connect(str(estimates.warehouse.path), read_only=True) as connection:
        relation = connection.sql(WEIGHTS_QUERY.format(relation=f"intermediate.{WEIGHTS_MODEL}"))
        rows = [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]
    metadata = weights_metadata(rows)
    table = metadata["er_weights"].value
    assert len(table.records) == len(rows) == len(estimates.rows())
    assert {record.data["client_id"] for record in table.records} == {"em", "tiny", "same"}
    chart = metadata["er_weight_chart"].value
    assert chart.startswith("### em: 3,000 records")  # the largest client first
    assert "| email | exact |" in chart and "█" in chart and "░" in chart
    assert metadata["er_weight_clients"].value == 3


class _WarehouseAdapter:
    """What the metadata reads of the build's dbt adapter, on the test's warehouse."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def connection_named(self, name: str) -> Iterator[None]:
        yield

    def execute(self, sql: str, fetch: bool) -> tuple[None, SimpleNamespace]:
        with duckdb.connect(str(self.path), read_only=True) as connection:
            relation = connection.sql(sql)
            return None, SimpleNamespace(column_names=relation.columns, rows=relation.fetchall())


def test_the_weights_models_materialization_carries_the_metadata_when_a_build_emits_it(
    estimates: Estimates,
) -> None:
    unique_id = f"model.integration_platform.{WEIGHTS_MODEL}"
    relation = f"intermediate.{WEIGHTS_MODEL}"
    invocation = SimpleNamespace(
        adapter=_WarehouseAdapter(estimates.warehouse.path),
        manifest={"nodes": {unique_id: {"relation_name": relation}}},
        project_dir=estimates.warehouse.project,
    )
    events = [
        Output(None, output_name="weights", metadata={"unique_id": unique_id}),
        Output(None, output_name="pairs", metadata={"unique_id": "model.x.int_customer_pairs"}),
    ]
    weights, other = with_weights_metadata(cast(Any, invocation), iter(events))
    assert {"er_weights", "er_weight_chart", "er_weight_clients"} <= set(weights.metadata)
    assert weights.metadata["er_weight_clients"].value == 3
    assert "er_weights" not in other.metadata
