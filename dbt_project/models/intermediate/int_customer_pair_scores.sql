-- Fellegi–Sunter scores of the candidate pairs. Each field's comparison lands on one level
-- (exact, nickname, typo, different, ...; int_customer_pair_comparisons); each level's match
-- weight is log2(m / u), where m = P(level | same person) and u = P(level | different people).
-- A field missing on either side is no evidence: weight 0. The pair's match weight is the
-- prior's weight plus the levels' weights; `reasons` spells the sum out. A pair is always two
-- records of one client (int_customer_candidate_pairs blocks within a client).
-- Var `er_weights` says where m, u and the prior come from: `estimated` (the default), each
-- client's own, estimated from its records (int_customer_comparison_weights); `fixed`, the seed
-- er_comparison_levels and `er_prior_match_weight` for every client.
-- depends_on: {{ ref('er_comparison_levels') }}
-- depends_on: {{ ref('int_customer_comparison_weights') }}
{%- set comparisons = customer_comparisons() %}
{%- set weights_from = var('er_weights', 'estimated') %}
{%- if weights_from not in ('estimated', 'fixed') %}
{{ exceptions.raise_compiler_error("var er_weights is " ~ weights_from
                                   ~ ": expected `estimated` or `fixed`") }}
{%- endif %}
{#- The levels' seed weights, read when the model runs, become literals in the SQL: the compiled
    model shows every weight it used (fixed), or which levels it reads per client (estimated). -#}
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

with compared as (

    select * from {{ ref('int_customer_pair_comparisons') }}

),
{%- if weights_from == 'estimated' %}

client_weights as (

    -- one row per client: its prior and every level's weight as columns
    select
        client_id,
        any_value(prior_weight) as prior_weight,
        {%- for comparison in comparisons %}
        {%- for level in level_weights.get(comparison, {}) %}
        any_value(match_weight) filter (where comparison = '{{ comparison }}'
                                          and level = '{{ level }}') as {{ comparison }}__{{ level }},
        {%- endfor %}
        {%- endfor %}
    from {{ ref('int_customer_comparison_weights') }}
    group by client_id

),
{%- endif %}

weighted as (

    select
        compared.*,
        {%- for comparison in comparisons %}
        case {{ comparison }}_level
            {%- for level, weight in level_weights.get(comparison, {}).items() %}
            when '{{ level }}' then
                {%- if weights_from == 'estimated' %} client_weights.{{ comparison }}__{{ level }}
                {%- else %} {{ weight }}{% endif %}
            {%- endfor %}
            else 0
        end as {{ comparison }}_weight,
        {%- endfor %}
        {%- if weights_from == 'estimated' %}
        client_weights.prior_weight
        {%- else %}
        {{ var('er_prior_match_weight') }} as prior_weight
        {%- endif %}
    from compared
    {%- if weights_from == 'estimated' %}
    join client_weights using (client_id)
    {%- endif %}

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
