-- Fellegi–Sunter scores of the candidate pairs. Each field's comparison lands on one level
-- (exact, nickname, typo, different, ...); each level's match weight is log2(m / u) from the
-- er_comparison_levels seed, where m = P(level | same person) and u = P(level | different
-- people). A field missing on either side is no evidence: weight 0. The pair's match weight is
-- the prior's weight plus the levels' weights; `reasons` spells the sum out. A pair is always
-- two records of one client (int_customer_candidate_pairs blocks within a client).
-- depends_on: {{ ref('er_comparison_levels') }}
{%- set comparisons = customer_comparisons() %}
{#- The levels' weights, read from the seed when the model runs, become literals in the SQL:
    the compiled model shows every weight it used. -#}
{%- set level_weights = {} %}
{%- if execute %}
{%- set levels = run_query("select comparison, level, log2(m_probability / u_probability) from "
                           ~ ref('er_comparison_levels') ~ " order by comparison, level") %}
{%- for row in levels.rows %}
{%- do level_weights.setdefault(row[0], {}).update({row[1]: row[2]}) %}
{%- endfor %}
{#- an identifier kind without rows of its own weighs like the generic `identifier` -#}
{%- for kind in customer_identifier_kinds() if kind not in level_weights %}
{%- do level_weights.update({kind: level_weights.get('identifier', {})}) %}
{%- endfor %}
{%- endif %}

with pairs as (

    select * from {{ ref('int_customer_candidate_pairs') }}

),

identities as (

    select * from {{ ref('int_customer_identities_enriched') }}

),

compared as (

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

),

weighted as (

    select
        compared.*,
        {%- for comparison in comparisons %}
        case {{ comparison }}_level
            {%- for level, weight in level_weights.get(comparison, {}).items() %}
            when '{{ level }}' then {{ weight }}
            {%- endfor %}
            else 0
        end as {{ comparison }}_weight,
        {%- endfor %}
        {{ var('er_prior_match_weight') }} as prior_weight
    from compared

),

final as (

    select
        client_id,
        left_key,
        right_key,
        left_source_system,
        right_source_system,
        blocking_rules,
        {%- for comparison in comparisons %}
        {{ comparison }}_level,
        round({{ comparison }}_weight, 3) as {{ comparison }}_weight,
        {%- endfor %}
        prior_weight,
        round(prior_weight
              {%- for comparison in comparisons %} + {{ comparison }}_weight{% endfor %}, 3)
            as match_weight,
        1 / (1 + pow(2, -(prior_weight
              {%- for comparison in comparisons %} + {{ comparison }}_weight{% endfor %})))
            as match_probability,
        concat_ws('; ',
            {%- for comparison in comparisons %}
            case when {{ comparison }}_level is not null then
                '{{ comparison }} ' || {{ comparison }}_level || ' ('
                || case when {{ comparison }}_weight >= 0 then '+' else '' end
                || round({{ comparison }}_weight, 1)::varchar || ')' end
            {%- if not loop.last %},{% endif %}
            {%- endfor %}
        ) as reasons
    from weighted

)

select * from final
