{#- Reading raw tables: one version per record, and the lineage every staging row keeps. -#}

{% macro keep_latest_version() -%}
{#- A record can land in several partitions and runs: the most recently fetched one wins
    (then the most recently loaded, then the latest partition, so the choice is stable). -#}
qualify row_number() over (
    partition by _primary_key
    order by _fetched_at desc, _loaded_at desc, _partition_key desc
) = 1
{%- endmacro %}

{% macro record_key(source_name, endpoint, id_expr) -%}
{#- The platform-wide key of a raw record, `<source>:<endpoint>:<primary key>`: the same key
    the identity staging gives customer records, so facts find their customer cluster. -#}
'{{ source_name }}:{{ endpoint }}:' || {{ id_expr }}
{%- endmacro %}

{% macro raw_lineage_columns(source_name, endpoint) -%}
{{ record_key(source_name, endpoint, '_primary_key') }} as source_record_key,
        _primary_key as source_record_id,
        _partition_key,
        _run_id,
        _fetched_at,
        _loaded_at
{%- endmacro %}
