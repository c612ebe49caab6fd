-- The Fellegi–Sunter parameters of each client, estimated from its own records, Splink-style:
--   u = P(level | two people): how often each level occurs among random pairs of the client's
--       records (a deterministic sample of at most `er_u_sample_records` records, all their
--       pairs), as Splink's estimate_u_using_random_sampling, less the client's duplicates
--       among those pairs (macro two_people_u);
--   m = P(level | one person) and the prior λ = P(two of the client's records are one person):
--       expectation-maximisation over the client's candidate pairs with u fixed, as Splink's
--       estimate_parameters_using_expectation_maximisation, starting from the seed
--       er_comparison_levels and `er_prior_match_weight`. The E-step is the scoring itself
--       (λ over all the client's record pairs, every pair outside the blocks counted as two
--       people), so the weights it converges to are the ones int_customer_pair_scores uses.
-- Stable by construction: a fixed number of iterations (`er_em_iterations`, unrolled below),
-- every probability inside [1e-9, 1 - 1e-9], and each estimate a blend with the seed, which
-- counts as `er_em_prior_matches` matching pairs (m) or `er_em_prior_pairs` random pairs
-- (u, λ): a client with few records keeps about the seed's weights. A level too rare for the
-- sample to measure keeps the seed's weight relative to the prior (macro two_people_u).
-- λ is at most `er_max_prior_match_weight`: in a small client (λ of 2^-9 at 1,000 records) the
-- levels' weights, multiplied as if independent (names go with a country, a household shares
-- a last name and an address), would link two records on their names alone.
-- The EM runs on the distinct patterns of levels (with their pair counts), not on the pairs.
{%- set comparisons = customer_comparisons() %}
{%- set iterations = var('er_em_iterations', 10) %}
{%- set sample_records = var('er_u_sample_records', 1000) %}
{%- set prior_matches = var('er_em_prior_matches', 50) %}
{%- set prior_pairs = var('er_em_prior_pairs', 1000) %}
{%- set max_prior = '1 / (1 + pow(2, -(' ~ var('er_max_prior_match_weight', -13) ~ ')))' %}

with seed as (

    select * from {{ ref('er_comparison_levels') }}

),

identities as (

    select * from {{ ref('int_customer_identities_enriched') }}

),

pair_comparisons as (

    select * from {{ ref('int_customer_pair_comparisons') }}

),

clients as (

    select
        client_id,
        count(*) as records,
        count(*) * (count(*) - 1) // 2 as record_pairs,
        least(count(*), {{ sample_records }}) * (least(count(*), {{ sample_records }}) - 1) // 2
            as sample_pairs
    from identities
    group by client_id

),

compared_fields as (

    select unnest([
        {%- for comparison in comparisons %}'{{ comparison }}'{% if not loop.last %}, {% endif %}
        {%- endfor %}]) as comparison

),

seed_levels as (

    -- an identifier kind without rows of its own takes the generic `identifier` rows
    select
        compared_fields.comparison,
        seed.level,
        seed.m_probability as seed_m_probability,
        seed.u_probability as seed_u_probability
    from compared_fields
    left join (select distinct comparison from seed) as own
      on own.comparison = compared_fields.comparison
    join seed on seed.comparison = coalesce(own.comparison, 'identifier')

),

client_levels as (

    select clients.client_id, seed_levels.*
    from clients
    cross join seed_levels

),

-- u: random pairs of one client's records (never two clients': pairs are only ever scored
-- within a client), the sample chosen by a hash of the record key so every run takes the same
sampled as (

    select * from identities
    qualify row_number() over (partition by client_id order by md5(record_key), record_key)
        <= {{ sample_records }}

),

random_pairs as (

    select l.client_id, {{ customer_comparison_levels('l', 'r') }}
    from sampled as l
    join sampled as r on r.client_id = l.client_id and l.record_key < r.record_key

),

random_levels as (

    select client_id, regexp_replace(field, '_level$', '') as comparison, level
    from (
        unpivot random_pairs
        on {% for comparison in comparisons %}{{ comparison }}_level{% if not loop.last %}, {% endif %}{% endfor %}
        into name field value level
    )

),

sampled_levels as (

    select client_id, comparison, level, count(*) as sampled_pairs
    from random_levels
    group by all

),

client_samples as (

    select
        client_levels.*,
        coalesce(sampled_levels.sampled_pairs, 0) as sampled_pairs,
        sum(coalesce(sampled_levels.sampled_pairs, 0))
            over (partition by client_levels.client_id, client_levels.comparison)
            as compared_sample_pairs
    from client_levels
    left join sampled_levels using (client_id, comparison, level)

),

-- m and λ: EM over the distinct patterns of levels among the candidate pairs
patterns as (

    select
        row_number() over (order by client_id
            {%- for comparison in comparisons %}, {{ comparison }}_level{% endfor %}) as pattern_id,
        *
    from (
        select
            client_id,
            {%- for comparison in comparisons %}
            {{ comparison }}_level,
            {%- endfor %}
            count(*) as pairs
        from pair_comparisons
        group by all
    )

),

pattern_levels as (

    select pattern_id, client_id, pairs, regexp_replace(field, '_level$', '') as comparison, level
    from (
        unpivot patterns
        on {% for comparison in comparisons %}{{ comparison }}_level{% if not loop.last %}, {% endif %}{% endfor %}
        into name field value level
    )

),

priors_0 as materialized (

    select
        client_id,
        least({{ max_prior }}, {{ clamp_probability(seed_prior_probability()) }})
            as prior_probability,
        null::double as prior_change
    from clients

),

parameters_0 as materialized (

    select
        samples.client_id,
        samples.comparison,
        samples.level,
        samples.seed_m_probability,
        samples.seed_u_probability,
        samples.sampled_pairs,
        samples.compared_sample_pairs,
        {{ clamp_probability('samples.seed_m_probability') }} as m_probability,
        0.0 as matched_pairs,
        null::double as previous_m_probability,
        null::double as m_change,
        {{ two_people_u('samples', 'priors.prior_probability',
                        clamp_probability('samples.seed_m_probability'),
                        'priors.prior_probability') }} as u_probability
    from client_samples as samples
    join priors_0 as priors using (client_id)

),

{%- for i in range(iterations) %}

-- iteration {{ i + 1 }}: E-step (each pattern's match probability), M-step (m and λ)
pattern_weights_{{ i }} as (

    select pattern_levels.pattern_id,
           sum(log2(parameters.m_probability / parameters.u_probability)) as fields_weight
    from pattern_levels
    join parameters_{{ i }} as parameters using (client_id, comparison, level)
    group by pattern_levels.pattern_id

),

posterior_{{ i }} as materialized (

    select
        patterns.pattern_id,
        patterns.client_id,
        patterns.pairs,
        1 / (1 + pow(2, -(log2(priors.prior_probability / (1 - priors.prior_probability))
                          + coalesce(pattern_weights.fields_weight, 0)))) as match_probability
    from patterns
    join priors_{{ i }} as priors using (client_id)
    left join pattern_weights_{{ i }} as pattern_weights using (pattern_id)

),

matched_{{ i }} as (

    select
        pattern_levels.client_id,
        pattern_levels.comparison,
        pattern_levels.level,
        sum(pattern_levels.pairs * posterior.match_probability) as matched_pairs
    from pattern_levels
    join posterior_{{ i }} as posterior using (pattern_id)
    group by all

),

priors_{{ i + 1 }} as materialized (

    select
        client_id,
        prior_probability,
        abs(prior_probability - previous_prior_probability) / previous_prior_probability
            as prior_change
    from (
        select
            clients.client_id,
            least({{ max_prior }}, {{ clamp_probability(
                '(coalesce(sum(posterior.pairs * posterior.match_probability), 0) + '
                ~ prior_pairs ~ ' * ' ~ seed_prior_probability() ~ ') / (clients.record_pairs + '
                ~ prior_pairs ~ ')') }}) as prior_probability,
            any_value(priors.prior_probability) as previous_prior_probability
        from clients
        join priors_{{ i }} as priors using (client_id)
        left join posterior_{{ i }} as posterior using (client_id)
        group by clients.client_id, clients.record_pairs
    )

),

parameters_{{ i + 1 }} as materialized (

    select
        estimated.* exclude (compared_matches),
        abs(estimated.m_probability - estimated.previous_m_probability) as m_change,
        {{ two_people_u('estimated', 'match_rates.match_rate', 'estimated.m_probability',
                        'priors.prior_probability') }} as u_probability
    from (
        select
            parameters.client_id,
            parameters.comparison,
            parameters.level,
            parameters.seed_m_probability,
            parameters.seed_u_probability,
            parameters.sampled_pairs,
            parameters.compared_sample_pairs,
            {{ clamp_probability(
                '(coalesce(matched.matched_pairs, 0) + ' ~ prior_matches
                ~ ' * parameters.seed_m_probability) / (sum(coalesce(matched.matched_pairs, 0)) '
                ~ 'over (partition by parameters.client_id, parameters.comparison) + '
                ~ prior_matches ~ ')') }} as m_probability,
            coalesce(matched.matched_pairs, 0) as matched_pairs,
            sum(coalesce(matched.matched_pairs, 0))
                over (partition by parameters.client_id, parameters.comparison)
                as compared_matches,
            parameters.m_probability as previous_m_probability
        from parameters_{{ i }} as parameters
        left join matched_{{ i }} as matched using (client_id, comparison, level)
    ) as estimated
    join priors_{{ i + 1 }} as priors using (client_id)
    join clients using (client_id)
    -- λ among the pairs that compare the field: the matches that do, over the client's pairs
    -- that do (as many as in the sample, scaled to all its pairs)
    cross join lateral (
        select least(1 - 1e-9, coalesce(
            estimated.compared_matches * clients.sample_pairs
            / nullif(clients.record_pairs * estimated.compared_sample_pairs, 0), 0)) as match_rate
    ) as match_rates

),
{%- endfor %}

final as (

    select
        parameters.client_id,
        parameters.comparison,
        parameters.level,
        parameters.m_probability,
        parameters.u_probability,
        log2(parameters.m_probability / parameters.u_probability) as match_weight,
        parameters.seed_m_probability,
        parameters.seed_u_probability,
        log2(parameters.seed_m_probability / parameters.seed_u_probability) as seed_match_weight,
        parameters.matched_pairs,
        parameters.sampled_pairs,
        parameters.compared_sample_pairs,
        clients.records,
        priors.prior_probability as prior_match_probability,
        log2(priors.prior_probability / (1 - priors.prior_probability)) as prior_weight,
        {{ iterations }} as em_iterations,
        -- what the last iteration still moved: the largest change of an m, or of λ relative
        greatest(max(parameters.m_change) over (partition by parameters.client_id),
                 priors.prior_change) as em_last_change
    from parameters_{{ iterations }} as parameters
    join priors_{{ iterations }} as priors using (client_id)
    join clients using (client_id)

)

select * from final
