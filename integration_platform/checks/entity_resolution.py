"""Entity-resolution quality: pairwise precision, recall and F1 against the sandbox's truth.

The sandbox knows which person every vendor record is (`/_sandbox/ground-truth` on each
vendor's base URL). The check reads the resolved clusters from the warehouse's published copy
and compares: a *predicted* pair is two records in one cluster, a *true* pair two records of
one person; counts come from group sizes per (cluster, person), never from pair lists. Beside
the overall scores it reports them for pairs across two sources and for duplicates inside one
source, and the blocking's pair completeness (true pairs among the candidate pairs / all true
pairs). Real sources have no ground truth: the check then passes as skipped and says why.

The sandbox's ground truth describes its default tenant, the `demo` client: only the demo
client's clusters and candidate pairs are scored. Other clients' records (another population,
or the same one under other credentials) are left out, and since resolution never links two
clients' records, leaving them out changes nothing in the demo client's scores.
(No `from __future__ import annotations`: Dagster reads the check's signature at runtime.)
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import duckdb
import httpx
import polars as pl
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    asset_check,
)

from integration_platform.assets.raw import api_resource_key
from integration_platform.assets.resources import ApiSourceResource, WarehouseResource
from integration_platform.client_ids import DEMO_CLIENT_ID
from integration_platform.specs.models import SourceSpec

CLUSTERS_ASSET = AssetKey(["intermediate", "int_customer_clusters"])
# the client whose records the sandbox's ground truth describes
SCORED_CLIENT = DEMO_CLIENT_ID
CLUSTERS_QUERY = (
    "select record_key, customer_id from intermediate.int_customer_clusters where client_id = ?"
)
CANDIDATE_PAIRS_QUERY = (
    "select left_key, right_key from intermediate.int_customer_candidate_pairs where client_id = ?"
)
CLIENTS_QUERY = (
    "select client_id, count(*) from intermediate.int_customer_clusters "
    "group by client_id order by client_id"
)
MIN_F1 = 0.97
MIN_PRECISION = 0.99
TRUTH_PATH = "/_sandbox/ground-truth"
HEALTH_PATH = "/_sandbox/health"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class GroundTruthUnavailable(Exception):
    """The sources are not (all) the sandbox, so there is nothing to compare against."""


@dataclass(frozen=True)
class PairwiseScores:
    precision: float
    recall: float
    f1: float
    true_positive_pairs: int
    predicted_pairs: int
    true_pairs: int
    records_compared: int
    clusters: int
    entities: int


@dataclass(frozen=True)
class ResolutionQuality:
    """Pairwise scores overall, across sources and within one, and the blocking's reach."""

    overall: PairwiseScores
    across_sources: PairwiseScores  # pairs of records from two different sources
    within_source: PairwiseScores  # duplicates: pairs of records of one source
    pair_completeness: float  # true pairs among the candidate pairs / all true pairs
    candidate_pairs: int
    true_candidate_pairs: int

    def metadata(self) -> dict[str, float | int]:
        """Flat numbers for Dagster: the overall scores as they are, the others prefixed."""
        numbers: dict[str, float | int] = dict(asdict(self.overall))
        for split in ("across_sources", "within_source"):
            scores: PairwiseScores = getattr(self, split)
            numbers.update(
                {
                    f"{split}_precision": scores.precision,
                    f"{split}_recall": scores.recall,
                    f"{split}_f1": scores.f1,
                    f"{split}_true_pairs": scores.true_pairs,
                    f"{split}_predicted_pairs": scores.predicted_pairs,
                }
            )
        numbers.update(
            pair_completeness=self.pair_completeness,
            candidate_pairs=self.candidate_pairs,
            true_candidate_pairs=self.true_candidate_pairs,
        )
        return {
            name: round(value, 6) if isinstance(value, float) else value
            for name, value in numbers.items()
        }

    def summary(self) -> str:
        def line(scores: PairwiseScores) -> str:
            return (
                f"precision {scores.precision:.4f}, recall {scores.recall:.4f}, F1 {scores.f1:.4f}"
            )

        return (
            f"{line(self.overall)} over {self.overall.records_compared} records; across "
            f"sources {line(self.across_sources)} ({self.across_sources.true_pairs} true "
            f"pairs); within a source {line(self.within_source)} "
            f"({self.within_source.true_pairs} true pairs); blocking pair completeness "
            f"{self.pair_completeness:.4f}"
        )


RECORD, CLUSTER, ENTITY = "record_key", "customer_id", "entity_id"


def pairwise_scores(clusters: pl.DataFrame, truth: pl.DataFrame) -> PairwiseScores:
    """Scores over the records present in both: clusters (record_key, customer_id), truth
    (record_key, entity_id)."""
    scored = _scored(clusters, truth)
    return _scores(*_pair_counts(scored), *_population(scored))


def resolution_quality(
    clusters: pl.DataFrame, truth: pl.DataFrame, candidate_pairs: pl.DataFrame
) -> ResolutionQuality:
    """The overall scores, split into pairs across two sources and pairs inside one (a record
    key starts with its source), and how many true pairs blocking let through (candidate
    pairs: left_key, right_key)."""
    scored = _scored(clusters, truth).with_columns(
        source=pl.col(RECORD).str.split(":").list.first()
    )
    population = _population(scored)
    true_positive, predicted, actual = _pair_counts(scored)
    overall = _scores(true_positive, predicted, actual, *population)
    inside = _pair_counts(scored, within="source")
    within = _scores(*inside, *population)
    across = _scores(
        true_positive - inside[0], predicted - inside[1], actual - inside[2], *population
    )
    entities = truth.select(RECORD, ENTITY)
    labelled = candidate_pairs.join(
        entities.rename({RECORD: "left_key", ENTITY: "left"}), on="left_key", how="left"
    ).join(entities.rename({RECORD: "right_key", ENTITY: "right"}), on="right_key", how="left")
    true_candidates = labelled.filter(pl.col("left") == pl.col("right")).height
    completeness = true_candidates / overall.true_pairs if overall.true_pairs else 1.0
    return ResolutionQuality(
        overall, across, within, completeness, candidate_pairs.height, true_candidates
    )


def _scored(clusters: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """record_key, customer_id, entity_id of the records both name."""
    return clusters.select(RECORD, CLUSTER).join(truth.select(RECORD, ENTITY), on=RECORD)


def _population(scored: pl.DataFrame) -> tuple[int, int, int]:
    return scored.height, scored[CLUSTER].n_unique(), scored[ENTITY].n_unique()


def _pair_counts(scored: pl.DataFrame, within: str | None = None) -> tuple[int, int, int]:
    """Pairs in one cluster and of one entity (true positives), in one cluster (predicted),
    of one entity (true), counted from group sizes; `within`: only pairs that share it."""
    by = [within] if within else []

    def pairs(*columns: str) -> int:
        sizes = scored.group_by([*by, *columns]).len()["len"]
        return int((sizes * (sizes - 1) // 2).sum())

    return pairs(CLUSTER, ENTITY), pairs(CLUSTER), pairs(ENTITY)


def _scores(
    true_positive: int, predicted: int, actual: int, records: int, clusters: int, entities: int
) -> PairwiseScores:
    precision = true_positive / predicted if predicted else 1.0
    recall = true_positive / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PairwiseScores(
        precision, recall, f1, true_positive, predicted, actual, records, clusters, entities
    )


def ground_truth(
    base_urls: Mapping[str, str], customer_endpoints: Mapping[str, set[str]], client: httpx.Client
) -> pl.DataFrame:
    """record_key, entity_id (the sandbox's person), for every customer endpoint of every
    source.

    Raises GroundTruthUnavailable when a source does not serve a ground truth (not the
    sandbox) or the sources are different sandboxes (their entity ids would not compare).
    """
    worlds: dict[str, tuple[object, object]] = {}
    truth: list[pl.DataFrame] = []
    for source, base_url in sorted(base_urls.items()):
        try:
            health = client.get(base_url.rstrip("/") + HEALTH_PATH)
            response = client.get(base_url.rstrip("/") + TRUTH_PATH)
        except httpx.HTTPError as exc:
            raise GroundTruthUnavailable(
                f"{source} ({base_url}) did not answer {TRUTH_PATH}: {exc}"
            ) from exc
        if response.status_code != 200 or health.status_code != 200:
            raise GroundTruthUnavailable(
                f"{source} ({base_url}) has no {TRUTH_PATH} (HTTP {response.status_code}): "
                "not the sandbox, so there is no ground truth to score against"
            )
        about = health.json()
        worlds[source] = (about.get("seed"), about.get("customers"))
        rows = pl.read_csv(response.content, infer_schema=False)  # every column as text
        truth.append(
            rows.filter(pl.col("endpoint").is_in(sorted(customer_endpoints[source]))).select(
                pl.concat_str(pl.lit(source), "endpoint", "record_id", separator=":").alias(RECORD),
                ENTITY,
            )
        )
    if len(set(worlds.values())) > 1:
        raise GroundTruthUnavailable(
            f"the sources are different sandboxes (seed, customers): {worlds}"
        )
    return (
        pl.concat(truth) if truth else pl.DataFrame(schema={RECORD: pl.String, ENTITY: pl.String})
    )


@dataclass(frozen=True)
class ClientResolution:
    """One client's resolved records and candidate pairs, keyed as the sandbox names records
    (`source:endpoint:id`), and how many records every other client has (left out)."""

    client_id: str
    clusters: pl.DataFrame  # record_key, customer_id
    candidate_pairs: pl.DataFrame  # left_key, right_key
    other_clients: dict[str, int]  # client_id → records, not scored


def sandbox_keys(record_keys: pl.Expr, client_id: str) -> pl.Expr:
    """Warehouse record keys (`<client_id>:source:endpoint:id`, see the dbt macro
    `record_key`) as the sandbox names the records (`source:endpoint:id`)."""
    return record_keys.str.strip_prefix(f"{client_id}:")


def read_resolution(
    warehouse: WarehouseResource, client_id: str = SCORED_CLIENT
) -> ClientResolution:
    """One client's resolution from the published copy (or, unpublished, under the lock)."""
    with warehouse.read_only() as connection:
        return client_resolution(connection, client_id)


def client_resolution(
    connection: duckdb.DuckDBPyConnection, client_id: str = SCORED_CLIENT
) -> ClientResolution:
    """Read one client's clusters and candidate pairs (as frames); closes the connection."""
    try:
        clusters = connection.sql(CLUSTERS_QUERY, params=[client_id]).pl()
        pairs = connection.sql(CANDIDATE_PAIRS_QUERY, params=[client_id]).pl()
        clients = connection.execute(CLIENTS_QUERY).fetchall()
    finally:
        connection.close()
    foreign = clusters.filter(~pl.col(RECORD).str.starts_with(f"{client_id}:"))
    if foreign.height:
        raise ValueError(f"record key {foreign[RECORD][0]!r} is not one of client {client_id!r}")
    return ClientResolution(
        client_id,
        clusters.select(sandbox_keys(pl.col(RECORD), client_id), pl.col(CLUSTER).cast(pl.String)),
        pairs.select(
            sandbox_keys(pl.col("left_key"), client_id),
            sandbox_keys(pl.col("right_key"), client_id),
        ),
        {str(other): int(records) for other, records in clients if other != client_id},
    )


def customer_endpoints(specs: Mapping[str, SourceSpec]) -> dict[str, set[str]]:
    """source → its endpoints that map `customer` (the records entity resolution sees)."""
    found: dict[str, set[str]] = {}
    for source, spec in specs.items():
        endpoints = {
            name for name, config in spec.endpoints.items() if config.entity.customer is not None
        }
        if endpoints:
            found[source] = endpoints
    return found


def build_entity_resolution_check(specs: Mapping[str, SourceSpec]) -> AssetChecksDefinition:
    """The `entity_resolution_quality` check on int_customer_clusters."""
    endpoints = customer_endpoints(specs)
    resource_keys = {api_resource_key(source) for source in endpoints}

    @asset_check(
        asset=CLUSTERS_ASSET,
        name="entity_resolution_quality",
        description=(
            f"Pairwise precision, recall and F1 of the {SCORED_CLIENT!r} client's customer "
            f"clusters against the sandbox's ground truth (which describes that client, the "
            f"sandbox's default tenant; other clients' records are left out), also across "
            f"sources and within one, and blocking pair completeness; fails below F1 {MIN_F1} "
            f"or precision {MIN_PRECISION} overall. Skipped (passes, saying why) when the "
            f"sources are not the sandbox or the {SCORED_CLIENT!r} client has no records."
        ),
        required_resource_keys={"warehouse", *resource_keys},
    )
    def entity_resolution_quality(context: AssetCheckExecutionContext) -> AssetCheckResult:
        base_urls = {}
        for source in endpoints:
            resource: ApiSourceResource = getattr(context.resources, api_resource_key(source))
            base_urls[source] = resource.spec().base_url
        try:
            with httpx.Client(timeout=TIMEOUT) as client:
                truth = ground_truth(base_urls, endpoints, client)
        except GroundTruthUnavailable as exc:
            return AssetCheckResult(
                passed=True,
                severity=AssetCheckSeverity.WARN,
                description=f"Skipped: {exc}.",
                metadata={"skipped": True, "reason": str(exc)},
            )
        resolution = read_resolution(context.resources.warehouse)
        clients: dict[str, str | int] = {
            "scored_client": resolution.client_id,
            "clients_not_scored": ", ".join(sorted(resolution.other_clients)) or "none",
            "records_not_scored": sum(resolution.other_clients.values()),
        }
        if resolution.clusters.is_empty():
            reason = (
                f"the {resolution.client_id!r} client, whose records the sandbox's "
                "ground truth describes, has no resolved records"
            )
            return AssetCheckResult(
                passed=True,
                severity=AssetCheckSeverity.WARN,
                description=f"Skipped: {reason}.",
                metadata={"skipped": True, "reason": reason, **clients},
            )
        quality = resolution_quality(resolution.clusters, truth, resolution.candidate_pairs)
        passed = quality.overall.f1 >= MIN_F1 and quality.overall.precision >= MIN_PRECISION
        ignored = (
            f"; {clients['records_not_scored']} records of other clients "
            f"({clients['clients_not_scored']}) not scored"
            if resolution.other_clients
            else ""
        )
        return AssetCheckResult(
            passed=passed,
            severity=AssetCheckSeverity.ERROR,
            description=(
                f"Client {resolution.client_id!r}: {quality.summary()} (need F1 ≥ "
                f"{MIN_F1}, precision ≥ {MIN_PRECISION} overall){ignored}"
            ),
            metadata={
                **quality.metadata(),
                **clients,
                "min_f1": MIN_F1,
                "min_precision": MIN_PRECISION,
                "skipped": False,
            },
        )

    return entity_resolution_quality
