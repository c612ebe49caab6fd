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

import csv
import io
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import duckdb
import httpx
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


def pairwise_scores(clusters: Mapping[str, str], truth: Mapping[str, str]) -> PairwiseScores:
    """Scores over the records present in both: record_key → cluster, record_key → entity."""
    common = clusters.keys() & truth.keys()
    by_cluster = Counter(clusters[key] for key in common)
    by_entity = Counter(truth[key] for key in common)
    by_both = Counter((clusters[key], truth[key]) for key in common)
    return _scores(
        _pairs(by_both.values()),
        _pairs(by_cluster.values()),
        _pairs(by_entity.values()),
        len(common),
        len(by_cluster),
        len(by_entity),
    )


def resolution_quality(
    clusters: Mapping[str, str],
    truth: Mapping[str, str],
    candidate_pairs: Iterable[tuple[str, str]],
) -> ResolutionQuality:
    """The overall scores, split into pairs across two sources and pairs inside one (a record
    key starts with its source), and how many true pairs blocking let through."""
    overall = pairwise_scores(clusters, truth)
    by_source: dict[str, list[str]] = {}
    for key in clusters.keys() & truth.keys():
        by_source.setdefault(key.split(":", 1)[0], []).append(key)
    per_source = [
        pairwise_scores({key: clusters[key] for key in keys}, {key: truth[key] for key in keys})
        for keys in by_source.values()
    ]
    population = (overall.records_compared, overall.clusters, overall.entities)
    within = _scores(
        sum(s.true_positive_pairs for s in per_source),
        sum(s.predicted_pairs for s in per_source),
        sum(s.true_pairs for s in per_source),
        *population,
    )
    across = _scores(
        overall.true_positive_pairs - within.true_positive_pairs,
        overall.predicted_pairs - within.predicted_pairs,
        overall.true_pairs - within.true_pairs,
        *population,
    )
    candidates = true_candidates = 0
    for left, right in candidate_pairs:
        candidates += 1
        entity = truth.get(left)
        true_candidates += entity is not None and entity == truth.get(right)
    completeness = true_candidates / overall.true_pairs if overall.true_pairs else 1.0
    return ResolutionQuality(overall, across, within, completeness, candidates, true_candidates)


def _scores(
    true_positive: int, predicted: int, actual: int, records: int, clusters: int, entities: int
) -> PairwiseScores:
    precision = true_positive / predicted if predicted else 1.0
    recall = true_positive / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PairwiseScores(
        precision, recall, f1, true_positive, predicted, actual, records, clusters, entities
    )


def _pairs(group_sizes: Iterable[int]) -> int:
    return sum(n * (n - 1) // 2 for n in group_sizes)


def ground_truth(
    base_urls: Mapping[str, str], customer_endpoints: Mapping[str, set[str]], client: httpx.Client
) -> dict[str, str]:
    """record_key → sandbox entity id, for every customer endpoint of every source.

    Raises GroundTruthUnavailable when a source does not serve a ground truth (not the
    sandbox) or the sources are different sandboxes (their entity ids would not compare).
    """
    worlds: dict[str, tuple[object, object]] = {}
    truth: dict[str, str] = {}
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
        for row in csv.DictReader(io.StringIO(response.text)):
            if row["endpoint"] in customer_endpoints[source]:
                truth[f"{source}:{row['endpoint']}:{row['record_id']}"] = row["entity_id"]
    if len(set(worlds.values())) > 1:
        raise GroundTruthUnavailable(
            f"the sources are different sandboxes (seed, customers): {worlds}"
        )
    return truth


@dataclass(frozen=True)
class ClientResolution:
    """One client's resolved records and candidate pairs, keyed as the sandbox names records
    (`source:endpoint:id`), and how many records every other client has (left out)."""

    client_id: str
    clusters: dict[str, str]  # record → customer_id
    candidate_pairs: list[tuple[str, str]]
    other_clients: dict[str, int]  # client_id → records, not scored


def sandbox_key(record_key: str, client_id: str) -> str:
    """A warehouse record key (`<client_id>:source:endpoint:id`, see the dbt macro
    `record_key`) as the sandbox names the record (`source:endpoint:id`)."""
    prefix = f"{client_id}:"
    if not record_key.startswith(prefix):
        raise ValueError(f"record key {record_key!r} is not one of client {client_id!r}")
    return record_key[len(prefix) :]


def read_resolution(
    warehouse: WarehouseResource, client_id: str = SCORED_CLIENT
) -> ClientResolution:
    """One client's resolution from the published copy (or, unpublished, under the lock)."""
    store = warehouse.warehouse()
    if warehouse.publish and store.published_path.exists():
        return client_resolution(store.read_only(), client_id)
    with store.locked():
        return client_resolution(duckdb.connect(str(store.path), read_only=True), client_id)


def client_resolution(
    connection: duckdb.DuckDBPyConnection, client_id: str = SCORED_CLIENT
) -> ClientResolution:
    """Read one client's clusters and candidate pairs; closes the connection."""
    try:
        clusters = connection.execute(CLUSTERS_QUERY, [client_id]).fetchall()
        pairs = connection.execute(CANDIDATE_PAIRS_QUERY, [client_id]).fetchall()
        clients = connection.execute(CLIENTS_QUERY).fetchall()
    finally:
        connection.close()
    return ClientResolution(
        client_id,
        {sandbox_key(str(key), client_id): str(customer) for key, customer in clusters},
        [
            (sandbox_key(str(left), client_id), sandbox_key(str(right), client_id))
            for left, right in pairs
        ],
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
        if not resolution.clusters:
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
