-- The comparison level of every field for every candidate pair (exact, nickname, typo,
-- different, ...; null when either record lacks the field), computed once: the weights'
-- estimation (int_customer_comparison_weights) and the scoring (int_customer_pair_scores)
-- both read it. A pair is always two records of one client.

with pairs as (

    select * from {{ ref('int_customer_candidate_pairs') }}

),

identities as (

    select * from {{ ref('int_customer_identities_enriched') }}

),

final as (

    select
        pairs.client_id,
        pairs.left_key,
        pairs.right_key,
        pairs.blocking_rules,
        l.source_system as left_source_system,
        r.source_system as right_source_system,
        {{ customer_comparison_levels('l', 'r') }}
    from pairs
    join identities as l on l.record_key = pairs.left_key
    join identities as r on r.record_key = pairs.right_key

)

select * from final
