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

extracted as (

    select
        '{{ source_name }}:{{ endpoint }}:' || _primary_key as record_key,
        '{{ source_name }}' as source_system,
        '{{ endpoint }}' as source_endpoint,
        _primary_key as source_record_id,
        {%- for field in text_fields %}
        {%- if field in mapping %}
        record ->> '$.{{ mapping[field] }}' as raw_{{ field }},
        {%- else %}
        null::varchar as raw_{{ field }},
        {%- endif %}
        {%- endfor %}
        _fetched_at as fetched_at,
        _run_id as run_id
    from deduped

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
        {{ normalize_email('raw_email') }} as email,
        {{ normalize_phone('raw_phone') }} as phone,
        {{ normalize_name('coalesce(raw_first_name, full_first)') }} as first_name,
        {{ normalize_name('coalesce(raw_last_name, full_last)') }} as last_name,
        try_cast(raw_date_of_birth as date) as date_of_birth,
        nullif(trim(raw_company), '') as company,
        {{ normalize_name('raw_address_line') }} as address_line,
        {{ normalize_name('raw_city') }} as city,
        {{ normalize_postcode('raw_postcode') }} as postcode,
        upper(nullif(trim(raw_state), '')) as state,
        upper(nullif(trim(raw_country), '')) as country,
        nullif(trim(raw_external_id), '') as external_id,
        {{ parse_timestamp_utc('raw_updated_at') }} as source_updated_at,
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
