"""Pairwise scores of resolved clusters against the sandbox's truth, computed with polars.

A *predicted* pair is two records in one cluster, a *true* pair two records of one person;
counts come from group sizes per (cluster, person), never from pair lists. Beside the overall
scores they are split into pairs across two sources and duplicates inside one source, with the
blocking's pair completeness (true pairs among the candidate pairs / all true pairs).

Kept apart from the check (`entity_resolution.py`), which imports it only when it runs: polars
costs every process that loads the definitions about half a second.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import duckdb
import httpx
import polars as pl

from integration_platform.assets.resources import WarehouseResource
from integration_platform.client_ids import DEMO_CLIENT_ID

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
    warehouse: WarehouseResource, client_id: str = DEMO_CLIENT_ID
) -> ClientResolution:
    """One client's resolution from the published copy (or, unpublished, under the lock)."""
    with warehouse.read_only() as connection:
        return client_resolution(connection, client_id)


def client_resolution(
    connection: duckdb.DuckDBPyConnection, client_id: str = DEMO_CLIENT_ID
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
