{#- Building blocks of customer entity resolution (int_customer_* models, analyses). -#}

{% macro customer_comparisons() -%}
{#- The compared fields, each a `<field>_level` column of customer_comparison_levels: the
    canonical ones, then every identifier kind the specs declare (national_id, tax_id, ...). -#}
{{ return(['email', 'phone', 'first_name', 'last_name', 'date_of_birth', 'address', 'country',
           'company'] + customer_identifier_kinds()) }}
{%- endmacro %}

{% macro customer_comparison_levels(l, r) -%}
{#- The comparison level of every field for a pair of enriched identities aliased `l` and
    `r`: one column `<field>_level` each, null when either side lacks the field. The weights
    of the levels are in the seed er_comparison_levels. -#}
{%- set shared = var('er_shared_identifier_max_records', 10) %}
    case
        when {{ l }}.email is null or {{ r }}.email is null then null
        when {{ l }}.email = {{ r }}.email and {{ l }}.email_record_count > {{ shared }}
        then 'shared'
        when {{ l }}.email = {{ r }}.email then 'exact'
        when {{ l }}.email_domain = {{ r }}.email_domain
             and damerau_levenshtein({{ l }}.email_local, {{ r }}.email_local) <= 1
        then 'fuzzy'
        when {{ l }}.email_local = {{ r }}.email_local then 'local_part'
        else 'different'
    end as email_level,
    case
        when {{ l }}.phone is null or {{ r }}.phone is null then null
        when {{ l }}.phone = {{ r }}.phone and {{ l }}.phone_record_count > {{ shared }}
        then 'shared'
        when {{ l }}.phone = {{ r }}.phone then 'exact'
        else 'different'
    end as phone_level,
    case
        when {{ l }}.first_name is null or {{ r }}.first_name is null then null
        -- a lone name ("Smith" typed into a one-field form) that is the other's last name
        when {{ l }}.is_lone_name and {{ l }}.first_name = {{ r }}.last_name
          or {{ r }}.is_lone_name and {{ r }}.first_name = {{ l }}.last_name then null
        when {{ l }}.first_name = {{ r }}.first_name then 'exact'
        when len(list_intersect({{ l }}.first_name_forms, {{ r }}.first_name_forms)) > 0
        then 'nickname'
        when {{ similar_names(l ~ '.first_name', r ~ '.first_name') }} then 'fuzzy'
        -- given name and surname swapped on one side (each alike the other's crosswise)
        when {{ similar_names(l ~ '.first_name', r ~ '.last_name') }}
         and {{ similar_names(l ~ '.last_name', r ~ '.first_name') }} then 'swapped'
        else 'different'
    end as first_name_level,
    case
        when {{ l }}.is_lone_name and {{ l }}.first_name = {{ r }}.last_name
          or {{ r }}.is_lone_name and {{ r }}.first_name = {{ l }}.last_name then 'exact'
        when {{ l }}.last_name is null or {{ r }}.last_name is null then null
        when {{ l }}.last_name = {{ r }}.last_name then 'exact'
        when {{ similar_names(l ~ '.last_name', r ~ '.last_name') }} then 'fuzzy'
        when {{ similar_names(l ~ '.first_name', r ~ '.last_name') }}
         and {{ similar_names(l ~ '.last_name', r ~ '.first_name') }} then 'swapped'
        else 'different'
    end as last_name_level,
    case
        when {{ l }}.date_of_birth is null or {{ r }}.date_of_birth is null then null
        when {{ l }}.date_of_birth = {{ r }}.date_of_birth then 'exact'
        -- a keying slip: one digit of YYYYMMDD mistyped or two swapped, or day and month
        -- swapped (11/03 for 03/11)
        when damerau_levenshtein(strftime({{ l }}.date_of_birth, '%Y%m%d'),
                                 strftime({{ r }}.date_of_birth, '%Y%m%d')) <= 1
          or year({{ l }}.date_of_birth) = year({{ r }}.date_of_birth)
             and month({{ l }}.date_of_birth) = day({{ r }}.date_of_birth)
             and day({{ l }}.date_of_birth) = month({{ r }}.date_of_birth) then 'fuzzy'
        else 'different'
    end as date_of_birth_level,
    case
        when coalesce({{ l }}.postcode, {{ l }}.city) is null
          or coalesce({{ r }}.postcode, {{ r }}.city) is null then null
        when {{ l }}.address_number = {{ r }}.address_number
             and jaro_winkler_similarity({{ l }}.address_street, {{ r }}.address_street) >= 0.8
             and ({{ l }}.postcode = {{ r }}.postcode or {{ l }}.city = {{ r }}.city)
        then 'street'
        when {{ l }}.postcode = {{ r }}.postcode then 'postcode'
        when {{ l }}.city = {{ r }}.city then 'city'
        else 'different'
    end as address_level,
    case
        when {{ l }}.country is null or {{ r }}.country is null then null
        when {{ l }}.country = {{ r }}.country then 'exact'
        else 'different'
    end as country_level,
    case
        when {{ l }}.company_key is null or {{ r }}.company_key is null then null
        when {{ l }}.company_key = {{ r }}.company_key then 'exact'
        else 'different'
    end as company_level
    {%- for kind in customer_identifier_kinds() %},
    case
        when {{ l }}.identifiers['{{ kind }}'] is null
          or {{ r }}.identifiers['{{ kind }}'] is null then null
        when {{ l }}.identifiers['{{ kind }}'] = {{ r }}.identifiers['{{ kind }}']
             and {{ l }}.identifier_record_counts['{{ kind }}'] > {{ shared }} then 'shared'
        when {{ l }}.identifiers['{{ kind }}'] = {{ r }}.identifiers['{{ kind }}'] then 'exact'
        -- one typo or transposition (Damerau: two neighbours swapped is one edit)
        when damerau_levenshtein({{ l }}.identifiers['{{ kind }}'],
                                 {{ r }}.identifiers['{{ kind }}']) <= 1 then 'fuzzy'
        else 'different'
    end as {{ kind }}_level
    {%- endfor %}
{%- endmacro %}

{% macro similar_names(a, b) -%}
{#- Two names one typo apart: Jaro-Winkler at least 0.9, or one edit when both have at least
    four letters. -#}
(jaro_winkler_similarity({{ a }}, {{ b }}) >= 0.9
 or least(length({{ a }}), length({{ b }})) >= 4 and damerau_levenshtein({{ a }}, {{ b }}) <= 1)
{%- endmacro %}

{% macro clamp_probability(expression) -%}
{#- A probability kept inside [1e-9, 1 - 1e-9], so that every log2 of it or of its odds is a
    finite number (the weights' estimation, int_customer_comparison_weights). Not 1e-6: a
    client of 200,000 records has 2·10^10 pairs (a prior of about −17 bits), and a bound of
    1e-6 would cap an exact email at 20 bits, too little to link on its own. -#}
greatest(1e-9, least(1 - 1e-9, {{ expression }}))
{%- endmacro %}

{% macro two_people_u(p, match_rate, m, prior) -%}
{#- u of one level (relation `p`: its sampled_pairs, compared_sample_pairs, seed_u_probability)
    from the random pairs of a client's records, which are one person at `match_rate` (λ among
    the pairs that compare this field): random = λ·m + (1 − λ)·u. Without taking the
    duplicates out, every agreeing level's u counts them (in a client of 1,000 records, 1,000
    of its 500,000 pairs), and `email exact` weighs 9 bits, not 20. Blended with the seed's u,
    which counts as `er_em_prior_pairs` pairs.
    A level that few pairs of two people show is too rare for the sample to measure (an exact
    email, an id: 686 exact emails in a sample, 650 of them duplicates, say nothing of the
    other 36): "few" is fewer than `er_em_min_sampled_pairs` or than three standard deviations
    of the level's count (sqrt of it). Such a level keeps the seed's weight relative to the
    prior: its u is the seed's scaled by the client's `prior` over the seed's (both fall as
    1/records). Between once and twice that many, u moves linearly from the one to the other,
    so that it never jumps from one EM iteration to the next. -#}
{%- set prior_pairs = var('er_em_prior_pairs', 1000) %}
{%- set two_people_pairs = '(' ~ p ~ '.sampled_pairs - ' ~ match_rate ~ ' * ' ~ m ~ ' * '
                           ~ p ~ '.compared_sample_pairs)' %}
{%- set too_few = 'greatest(' ~ var('er_em_min_sampled_pairs', 10) ~ ', 3 * sqrt(' ~ p
                  ~ '.sampled_pairs))' %}
{%- set measured = '(' ~ clamp_probability('(' ~ two_people_pairs ~ ' + ' ~ prior_pairs ~ ' * '
                   ~ p ~ '.seed_u_probability) / (' ~ p ~ '.compared_sample_pairs * (1 - '
                   ~ match_rate ~ ') + ' ~ prior_pairs ~ ')') ~ ')' %}
{%- set judged = '(' ~ clamp_probability(p ~ '.seed_u_probability * ' ~ prior ~ ' / ('
                 ~ seed_prior_probability() ~ ')') ~ ')' %}
{%- set confidence = 'greatest(0, least(1, ' ~ two_people_pairs ~ ' / ' ~ too_few ~ ' - 1))' %}
{{ confidence }} * {{ measured }} + (1 - {{ confidence }}) * {{ judged }}
{%- endmacro %}

{% macro seed_prior_probability() -%}
{#- λ of `er_prior_match_weight`, the prior the seed's weights were set with. -#}
1 / (1 + pow(2, -({{ var('er_prior_match_weight') }})))
{%- endmacro %}
