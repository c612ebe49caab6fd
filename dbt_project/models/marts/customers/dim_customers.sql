{#-
    The golden record: one row per customer_id (each customer is one client's, and every
    record it is made of is that client's), each field group taken from one source record:
      1. records that have the group (for name and address: the whole group) come first, so
         two records with a last name only never outvote one with both names;
      2. then agreement: the value most of the customer's records carry, compared in the
         normalized forms staging computes (email, phone as its last ten digits, the
         normalized first + last name pair, the normalized street + postcode, ...), so two
         records that say "hellwig" outvote one that says "ehllwig";
      3. then the field's source priority list in `customer_survivorship` (dbt_project.yml;
         sources not listed come after the listed);
      4. then the most recent record (source_updated_at, else fetched_at);
      5. then the smallest record_key, so the choice is deterministic.
    Source priority and recency only break ties between values equally many records agree on.
    Fields of a group (name, address) come from the same record. Every field says which record
    it came from; conflicts stay visible (all distinct emails and phones, conflict flags).
-#}
{%- set rules = var('customer_survivorship') %}
{%- set groups = {
    'email': {'fields': ['email'], 'present': 'email is not null', 'agree_on': ['email']},
    'phone': {'fields': ['phone'], 'present': 'phone is not null', 'agree_on': ['phone']},
    'name': {'fields': ['first_name', 'last_name'],
             'present': 'coalesce(first_name, last_name) is not null',
             'complete': 'first_name is not null and last_name is not null',
             'agree_on': ['first_name', 'last_name']},
    'date_of_birth': {'fields': ['date_of_birth'], 'present': 'date_of_birth is not null',
                      'agree_on': ['date_of_birth']},
    'company': {'fields': ['company'], 'present': 'company is not null',
                'agree_on': ['company_key']},
    'address': {'fields': ['address_line', 'city', 'postcode', 'state'],
                'present': 'coalesce(address_line, postcode, city) is not null',
                'complete': 'address_line is not null and postcode is not null',
                'agree_on': ['address_line', 'postcode']},
    'country': {'fields': ['country'], 'present': 'country is not null',
                'agree_on': ['country']},
    'identifiers': {'fields': ['identifiers'], 'present': 'cardinality(identifiers) > 0',
                    'agree_on': ['identifiers::varchar']},
} %}

{#- per group: a record's rank as the survivor, as one sortable string (cheaper to aggregate
    than a struct): completeness, agreement (inverted, so that more agreeing records sort
    first), source priority, staleness, then the record_key itself, so the smallest rank names
    the surviving record. Null: the record lacks the group. -#}
{%- set rank_prefix_length = 33 %}
{%- set survivor_rank = {} %}
{%- for group, spec in groups.items() %}
{%- set priority = rules.get(group, rules['default']) %}
{%- set rank -%}
case when {{ spec.present }} then
    {{ "case when " ~ spec.complete ~ " then '0' else '1' end" if spec.get('complete') else "'0'" }}
    || lpad((100000000 - {{ group }}_agreement)::varchar, 9, '0')
    || case source_system
        {%- for source in priority %} when '{{ source }}' then '{{ '%03d' % loop.index }}'{% endfor %}
        else '{{ '%03d' % (priority | length + 1) }}' end
    || lpad((4102444800000000 - coalesce(epoch_us(recency_at), 0))::varchar, 20, '0')
    || record_key
end
{%- endset %}
{%- do survivor_rank.update({group: rank}) %}
{%- endfor %}

with clusters as (

    select client_id, record_key, customer_id from {{ ref('int_customer_clusters') }}

),

identities as (

    select * from {{ ref('int_customer_identities_enriched') }}

),

clustered as (

    select clusters.customer_id, identities.*
    from clusters
    join identities
        on identities.client_id = clusters.client_id
        and identities.record_key = clusters.record_key

),

agreement_keys as (

    -- each group's normalized value per record, narrow (the counts below group on it)
    select
        client_id,
        customer_id,
        record_key,
        {%- for group, spec in groups.items() %}
        {%- set outer = loop %}
        {%- for value in spec.agree_on %}
        {{ value }} as {{ group }}_value_{{ loop.index }}{% if not (outer.last and loop.last) %},{% endif %}
        {%- endfor %}
        {%- endfor %}
    from clustered

),
{%- for group, spec in groups.items() %}

{{ group }}_agreement as (

    select
        client_id,
        customer_id,
        {%- for value in spec.agree_on %}
        {{ group }}_value_{{ loop.index }},
        {%- endfor %}
        count(*) as {{ group }}_agreement
    from agreement_keys
    group by all

),
{%- endfor %}

agreed as (

    -- per group: how many of the customer's records carry this record's (normalized) value;
    -- a count per (customer, value) joined back: linear, never record × record (and, unlike
    -- eight windows partitioned eight ways, no sort)
    select
        clustered.*,
        {%- for group in groups %}
        {{ group }}_agreement.{{ group }}_agreement{% if not loop.last %},{% endif %}
        {%- endfor %}
    from clustered
    join agreement_keys using (record_key)
    {%- for group, spec in groups.items() %}
    join {{ group }}_agreement
        on {{ group }}_agreement.client_id = agreement_keys.client_id
        and {{ group }}_agreement.customer_id = agreement_keys.customer_id
        {%- for value in spec.agree_on %}
        and {{ group }}_agreement.{{ group }}_value_{{ loop.index }}
            is not distinct from agreement_keys.{{ group }}_value_{{ loop.index }}
        {%- endfor %}
    {%- endfor %}

),

ranked as (

    select
        *,
        {%- for group in groups %}
        {{ survivor_rank[group] }} as {{ group }}_rank{% if not loop.last %},{% endif %}
        {%- endfor %}
    from agreed

),

survived as (

    select
        client_id,
        customer_id,
        {%- for group in groups %}
        substr(min({{ group }}_rank), {{ rank_prefix_length + 1 }})
            as {{ group }}_source_record_key,
        {%- endfor %}
        coalesce(list_sort(list_distinct(list(email))), []) as emails,
        coalesce(list_sort(list_distinct(list(phone))), []) as phones,
        -- two distinct values or more: the smallest is not the largest (a plain aggregate;
        -- count(distinct) would add a distinct aggregation per field)
        coalesce(min(email) < max(email), false) as email_conflict,
        coalesce(min(phone) < max(phone), false) as phone_conflict,
        coalesce(min(last_name) < max(last_name)
            or min(first_name_canonical) filter (where last_name is not null)
               < max(first_name_canonical) filter (where last_name is not null), false)
            as name_conflict,
        coalesce(min(date_of_birth) < max(date_of_birth), false) as date_of_birth_conflict,
        coalesce(min(postcode) < max(postcode), false) as address_conflict,
        list_sort(list(record_key)) as record_keys,
        list_sort(list_distinct(list(source_system))) as source_systems,
        count(*) as record_count,
        min(recency_at) as first_seen_at,
        max(recency_at) as last_updated_at
    from ranked
    group by client_id, customer_id

),

with_survivors as (

    -- each group's fields from its surviving record
    select
        survived.*,
        {%- for group, spec in groups.items() %}
        {%- for field in spec.fields %}
        {{ group }}_record.{{ field }}{% if not loop.last %},{% endif %}
        {%- endfor %}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from survived
    {%- for group in groups %}
    left join identities as {{ group }}_record
        on {{ group }}_record.client_id = survived.client_id
        and {{ group }}_record.record_key = survived.{{ group }}_source_record_key
    {%- endfor %}

),

final as (

    select
        client_id,
        customer_id,
        email,
        email_source_record_key,
        phone,
        phone_source_record_key,
        first_name,
        last_name,
        nullif(concat_ws(' ',
            {%- for part in ['first_name', 'last_name'] %}
            array_to_string(list_transform(string_split({{ part }}, ' '),
                lambda word: upper(left(word, 1)) || substr(word, 2)), ' ')
            {%- if not loop.last %},{% endif %}
            {%- endfor %}), '') as full_name,
        name_source_record_key,
        date_of_birth,
        date_of_birth_source_record_key,
        company,
        company_source_record_key,
        address_line,
        city,
        postcode,
        state,
        address_source_record_key,
        country,
        country_source_record_key,
        coalesce(identifiers, map()::map(varchar, varchar)) as identifiers,
        identifiers_source_record_key,
        emails,
        phones,
        email_conflict,
        phone_conflict,
        name_conflict,
        date_of_birth_conflict,
        address_conflict,
        record_keys,
        source_systems,
        record_count,
        first_seen_at,
        last_updated_at
    from with_survivors

)

select * from final
