"""Entity-resolution scores computed on frames (polars): pairs from group sizes, split into
pairs across sources and inside one, and blocking's pair completeness."""

from __future__ import annotations

import polars as pl
import pytest

from integration_platform.checks.resolution_scores import pairwise_scores, resolution_quality

# crm:1 and billing:1 are one person, resolved together; crm:2 and crm:3 are one person,
# resolved apart; billing:2 is its own person, wrongly joined with crm:3.
CLUSTERS = pl.DataFrame(
    {
        "record_key": ["crm:c:1", "billing:c:1", "crm:c:2", "crm:c:3", "billing:c:2"],
        "customer_id": ["A", "A", "B", "C", "C"],
    }
)
TRUTH = pl.DataFrame(
    {
        "record_key": ["crm:c:1", "billing:c:1", "crm:c:2", "crm:c:3", "billing:c:2", "x:c:9"],
        "entity_id": ["p1", "p1", "p2", "p2", "p3", "p9"],
    }
)


def test_scores_count_pairs_of_the_records_both_name_when_resolution_is_partly_wrong() -> None:
    scores = pairwise_scores(CLUSTERS, TRUTH)
    assert (scores.true_positive_pairs, scores.predicted_pairs, scores.true_pairs) == (1, 2, 2)
    assert (scores.records_compared, scores.clusters, scores.entities) == (5, 3, 3)
    assert scores.precision == pytest.approx(0.5)
    assert scores.f1 == pytest.approx(0.5)


def test_quality_splits_pairs_across_and_within_sources_and_scores_blocking_when_asked() -> None:
    candidates = pl.DataFrame(
        {
            "left_key": ["crm:c:1", "crm:c:2", "crm:c:3", "crm:c:1"],
            "right_key": ["billing:c:1", "crm:c:3", "billing:c:2", "nowhere:c:0"],
        }
    )
    quality = resolution_quality(CLUSTERS, TRUTH, candidates)
    across, within = quality.across_sources, quality.within_source
    assert (across.true_positive_pairs, across.predicted_pairs, across.true_pairs) == (1, 2, 1)
    assert (within.true_positive_pairs, within.predicted_pairs, within.true_pairs) == (0, 0, 1)
    assert (quality.candidate_pairs, quality.true_candidate_pairs) == (4, 2)
    assert quality.pair_completeness == pytest.approx(1.0)


def test_scores_are_perfect_and_empty_when_no_record_is_named_by_both() -> None:
    scores = pairwise_scores(CLUSTERS.head(0), TRUTH)
    assert (scores.records_compared, scores.precision, scores.recall) == (0, 1.0, 1.0)
