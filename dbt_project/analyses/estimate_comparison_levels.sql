-- Estimates the m and u probabilities of the seed er_comparison_levels from the warehouse,
-- beside the values in use, for a person to review before editing the seed (the models never
-- re-estimate on their own: weights that drift with the data would move customer ids).
--   u: how often each level occurs among random pairs of one client's records (resolution
--      never compares two clients' records, and one person may well be a customer of both),
--      nearly all two people; the few true matches among them make identifier levels look
--      ~1/N more common than they are between two people, so u of `email exact` here is an
--      upper bound;
--   m: how often it occurs among pairs sharing an exact, unshared email or identifier
--      (national id, ...; nearly all one person). The email and identifier comparisons
--      cannot be judged by the pairs they select: their m stays a judgement; their u shows
--      how rarely two random records share a mailbox or an id.
-- Run: dbt compile --select estimate_comparison_levels, then run the compiled SQL, e.g.
--   duckdb -readonly data/warehouse.published.duckdb < target/compiled/.../estimate_comparison_levels.sql
{%- set comparisons = customer_comparisons() %}

with identities as (

    select * from {{ ref('int_customer_identities_enriched') }}

),

sample_left as (

    select * from identities using sample reservoir(2000 rows) repeatable (42)

),

sample_right as (

    select * from identities using sample reservoir(2000 rows) repeatable (7)

),

random_pairs as (

    select {{ customer_comparison_levels('l', 'r') }}
    from sample_left as l
    join sample_right as r
      on r.client_id = l.client_id
     and r.record_key != l.record_key

),

identifier_matched_pairs as (

    select {{ customer_comparison_levels('l', 'r') }}
    from {{ ref('int_customer_candidate_pairs') }} as pairs
    join identities as l on l.record_key = pairs.left_key
    join identities as r on r.record_key = pairs.right_key
    where l.email = r.email
      and l.email_record_count <= {{ var('er_shared_identifier_max_records', 10) }}
       or len(list_filter(map_keys(l.identifiers), lambda kind:
              l.identifiers[kind] = r.identifiers[kind]
              and l.identifier_record_counts[kind]
                  <= {{ var('er_shared_identifier_max_records', 10) }})) > 0

),

levels as (

    {%- for comparison in comparisons %}
    select '{{ comparison }}' as comparison, {{ comparison }}_level as level, 'u' as estimate
    from random_pairs where {{ comparison }}_level is not null
    union all
    select '{{ comparison }}', {{ comparison }}_level, 'm'
    from identifier_matched_pairs where {{ comparison }}_level is not null
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}

),

estimated as (

    select
        comparison,
        level,
        count(*) filter (where estimate = 'm')
            / sum(count(*) filter (where estimate = 'm')) over (partition by comparison)
            as m_estimated,
        count(*) filter (where estimate = 'u')
            / sum(count(*) filter (where estimate = 'u')) over (partition by comparison)
            as u_estimated,
        count(*) filter (where estimate = 'm') as m_pairs,
        count(*) filter (where estimate = 'u') as u_pairs
    from levels
    group by comparison, level

),

final as (

    select
        coalesce(estimated.comparison, seed.comparison) as comparison,
        coalesce(estimated.level, seed.level) as level,
        round(estimated.m_estimated, 4) as m_estimated,
        seed.m_probability as m_in_use,
        round(estimated.u_estimated, 6) as u_estimated,
        seed.u_probability as u_in_use,
        estimated.m_pairs,
        estimated.u_pairs
    from estimated
    full join {{ ref('er_comparison_levels') }} as seed
      on seed.comparison = estimated.comparison and seed.level = estimated.level

)

select * from final order by comparison, level
