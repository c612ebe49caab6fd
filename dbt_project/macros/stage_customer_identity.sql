{#-
    Staging of one source endpoint's customer identities, from the spec's entity mapping
    (canonical field -> JSON path in the raw record). Unmapped fields are null, so sources
    without an email or a phone still take part in resolution on what they have.
-#}
{% macro stage_customer_identity(source_name, endpoint, mapping) %}
{%- set text_fields = ['email', 'phone', 'first_name', 'last_name', 'full_name', 'date_of_birth',
                       'company', 'address_line', 'city', 'postcode', 'state', 'country',
                       'updated_at', 'external_id'] -%}
with source as (

    select * from {{ source(source_name, endpoint) }}

),

deduped as (

    -- one row per record: the most recently fetched version
    select * from source
    qualify row_number() over (partition by _primary_key order by _fetched_at desc) = 1

),

{%- set mapped = [] %}
{%- for field in text_fields if field in mapping %}{% do mapped.append(field) %}{% endfor %}

values_extracted as (

    -- every mapped path in one pass over the JSON (one parse per record, not one per field)
    select
        *,
        {% if mapped -%}
        json_extract_string(record, [
            {%- for field in mapped %}'$.{{ mapping[field] }}'{% if not loop.last %}, {% endif %}{% endfor -%}
        ])
        {%- else %}[]::varchar[]{% endif %} as mapped_values
    from deduped

),

extracted as (

    select
        '{{ source_name }}:{{ endpoint }}:' || _primary_key as record_key,
        '{{ source_name }}' as source_system,
        '{{ endpoint }}' as source_endpoint,
        _primary_key as source_record_id,
        {%- for field in text_fields %}
        {%- if field in mapped %}
        mapped_values[{{ mapped.index(field) + 1 }}] as raw_{{ field }},
        {%- else %}
        null::varchar as raw_{{ field }},
        {%- endif %}
        {%- endfor %}
        _fetched_at as fetched_at,
        _run_id as run_id
    from values_extracted

),

split_names as (

    -- "Last, First" or "First Middle Last" when the source only has a full name
    select
        *,
        case when raw_full_name like '%,%' then trim(split_part(raw_full_name, ',', 2))
             else split_part(trim(raw_full_name), ' ', 1) end as full_first,
        case when raw_full_name like '%,%' then trim(split_part(raw_full_name, ',', 1))
             when strpos(trim(raw_full_name), ' ') > 0
             then regexp_extract(trim(raw_full_name), '(\S+)$', 1) end as full_last
    from extracted

),

final as (

    select
        record_key,
        source_system,
        source_endpoint,
        source_record_id,
        {#- An unmapped field is a typed null, not a normalizer applied to null: less work,
            and DuckDB 2.0 fails to bind some normalizers over a constant null. #}
        {%- set normalized = {
            'email': normalize_email('raw_email'),
            'phone': normalize_phone('raw_phone'),
            'first_name': normalize_name('coalesce(raw_first_name, full_first)'),
            'last_name': normalize_name('coalesce(raw_last_name, full_last)'),
            'date_of_birth': 'try_cast(raw_date_of_birth as date)',
            'company': "nullif(trim(raw_company), '')",
            'address_line': normalize_address('raw_address_line'),
            'city': normalize_name('raw_city'),
            'postcode': normalize_postcode('raw_postcode'),
            'state': "upper(nullif(trim(raw_state), ''))",
            'country': "upper(nullif(trim(raw_country), ''))",
            'external_id': "nullif(trim(raw_external_id), '')",
            'source_updated_at': parse_timestamp_utc('raw_updated_at'),
        } %}
        {%- set inputs = {'first_name': ['first_name', 'full_name'],
                          'last_name': ['last_name', 'full_name'],
                          'source_updated_at': ['updated_at']} %}
        {%- set types = {'date_of_birth': 'date', 'source_updated_at': 'timestamptz'} %}
        {%- for column, expression in normalized.items() %}
        {%- set is_mapped = inputs.get(column, [column]) | select('in', mapping) | list %}
        {{ expression if is_mapped else 'null::' ~ types.get(column, 'varchar') }} as {{ column }},
        {%- endfor %}
        raw_email,
        raw_phone,
        raw_first_name,
        raw_last_name,
        raw_full_name,
        fetched_at,
        run_id
    from split_names

)

select * from final
{% endmacro %}
