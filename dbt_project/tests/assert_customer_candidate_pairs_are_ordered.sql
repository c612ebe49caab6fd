-- A candidate pair names its records in key order, so each pair appears once, never as (b, a),
-- and never pairs a record with itself.
select left_key, right_key
from {{ ref('int_customer_candidate_pairs') }}
where left_key >= right_key
