{#-
    Staging of one source endpoint's customer identities, from the spec's entity mapping: one
    row per record of each client (the same primary key under two clients is two people's
    records, keyed apart by the client id that starts record_key).
    `mapping`: canonical field -> its source in the raw record, written as in the spec: a JSON
    path ('address.zip'), {'path': ..., 'format': [...]} for a date in given formats, or
    {'concat': [path, ...], 'sep': ' '} for a value composed of several fields. `identifiers`:
    identifier kind (national_id, tax_id, ...) -> its source, in the same forms. Unmapped
    fields are null, so sources without an email or a phone still take part in resolution on
    what they have.
-#}
{% macro stage_customer_identity(source_name, endpoint, mapping, identifiers={}) %}
{%- set text_fields = ['email', 'phone', 'first_name', 'last_name', 'full_name', 'date_of_birth',
                       'company', 'address_line', 'city', 'postcode', 'state', 'country',
                       'updated_at', 'external_id'] -%}
{%- set sources = {} %}
{%- for field in text_fields if field in mapping %}
{%- do sources.update({field: _customer_field_source(mapping[field])}) %}
{%- endfor %}
{%- set identifier_sources = {} %}
{%- for kind, source in identifiers.items() %}
{%- do identifier_sources.update({kind: _customer_field_source(source)}) %}
{%- endfor %}
{#- every path read, once: one JSON parse per record however many fields use it -#}
{%- set paths = [] %}
{%- for source in sources.values() | list + identifier_sources.values() | list %}
{%- for path in source.paths if path not in paths %}{% do paths.append(path) %}{% endfor %}
{%- endfor %}
with source as (

    select * from {{ source(source_name, endpoint) }}

),

deduped as (

    -- one row per record of each client: the most recently fetched version
    select * from source
    {{ keep_latest_version() }}

),

values_extracted as (

    -- every mapped path in one pass over the JSON (one parse per record, not one per field)
    select
        *,
        {% if paths -%}
        json_extract_string(record, [
            {%- for path in paths %}'$.{{ path }}'{% if not loop.last %}, {% endif %}{% endfor -%}
        ])
        {%- else %}[]::varchar[]{% endif %} as mapped_values
    from deduped

),

extracted as (

    select
        _client_id as client_id,
        {{ record_key(source_name, endpoint, '_primary_key', '_client_id') }} as record_key,
        '{{ source_name }}' as source_system,
        '{{ endpoint }}' as source_endpoint,
        _primary_key as source_record_id,
        {%- for field in text_fields %}
        {%- if field in sources %}
        {{ _customer_field_value(sources[field], paths) }} as raw_{{ field }},
        {%- else %}
        null::varchar as raw_{{ field }},
        {%- endif %}
        {%- endfor %}
        {%- for kind, source in identifier_sources.items() %}
        {{ _customer_field_value(source, paths) }} as raw_identifier__{{ kind }},
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
        client_id,
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
            'date_of_birth': parse_date('raw_date_of_birth',
                                        sources.get('date_of_birth', {}).get('format', [])),
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
        {%- set is_mapped = inputs.get(column, [column]) | select('in', sources) | list %}
        {{ expression if is_mapped else 'null::' ~ types.get(column, 'varchar') }} as {{ column }},
        {%- endfor %}
        {%- if identifier_sources %}
        -- identifier kind -> normalized value; kinds the record lacks are left out
        map_from_entries(list_filter([
            {%- for kind in identifier_sources %}
            {'key': '{{ kind }}', 'value': {{ normalize_identifier('raw_identifier__' ~ kind) }}}
            {%- if not loop.last %},{% endif %}
            {%- endfor %}
        ], lambda entry: entry.value is not null)) as identifiers,
        {%- else %}
        map()::map(varchar, varchar) as identifiers,
        {%- endif %}
        raw_email,
        raw_phone,
        raw_first_name,
        raw_last_name,
        raw_full_name,
        raw_date_of_birth,
        fetched_at,
        run_id
    from split_names

)

select * from final
{% endmacro %}

{% macro _customer_field_source(source) -%}
{#- A mapped field's source in one shape: {'paths': [...], 'sep': ..., 'format': [...]}. -#}
{%- if source is string -%}
{{ return({'paths': [source], 'sep': ' ', 'format': []}) }}
{%- endif -%}
{%- set formats = source.get('format') or [] -%}
{{ return({'paths': [source['path']] if source.get('path') else source['concat'],
           'sep': source.get('sep', ' '),
           'format': [formats] if formats is string else formats}) }}
{%- endmacro %}

{% macro _customer_field_value(source, paths) -%}
{#- The raw text of a mapped field: its one path's value, or its paths' values joined by `sep`
    (blank parts skipped; null when every part is blank). -#}
{%- if source.paths | length == 1 -%}
mapped_values[{{ paths.index(source.paths[0]) + 1 }}]
{%- else -%}
nullif(concat_ws('{{ source.sep | replace("'", "''") }}'
    {%- for path in source.paths %}, nullif(trim(mapped_values[{{ paths.index(path) + 1 }}]), ''){% endfor -%}
), '')
{%- endif -%}
{%- endmacro %}
