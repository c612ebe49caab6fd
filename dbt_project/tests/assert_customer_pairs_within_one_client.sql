{{ config(meta={'dagster': {'ref': {'name': 'int_customer_candidate_pairs'}}}) }}
-- Entity resolution never pairs two clients' records: both records of every candidate pair,
-- and so of every scored pair, belong to the client the pair names.
with pairs as (

    select 'int_customer_candidate_pairs' as model, client_id, left_key, right_key
    from {{ ref('int_customer_candidate_pairs') }}
    union all
    select 'int_customer_pair_scores', client_id, left_key, right_key
    from {{ ref('int_customer_pair_scores') }}

),

identities as (

    select client_id, record_key from {{ ref('int_customer_identities_enriched') }}

)

select
    pairs.model,
    pairs.client_id,
    pairs.left_key,
    left_identity.client_id as left_client_id,
    pairs.right_key,
    right_identity.client_id as right_client_id
from pairs
join identities as left_identity on left_identity.record_key = pairs.left_key
join identities as right_identity on right_identity.record_key = pairs.right_key
where left_identity.client_id is distinct from pairs.client_id
   or right_identity.client_id is distinct from pairs.client_id
