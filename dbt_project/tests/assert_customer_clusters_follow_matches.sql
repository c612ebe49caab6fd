{{ config(meta={'dagster': {'ref': {'name': 'int_customer_clusters'}}}) }}
-- Every pair linked by a score at or above the threshold ends up in one customer.
select scores.left_key, scores.right_key
from {{ ref('int_customer_pair_scores') }} as scores
join {{ ref('int_customer_clusters') }} as left_cluster on left_cluster.record_key = scores.left_key
join {{ ref('int_customer_clusters') }} as right_cluster on right_cluster.record_key = scores.right_key
where scores.match_probability >= {{ var('er_match_probability_threshold') }}
  and left_cluster.customer_id != right_cluster.customer_id
