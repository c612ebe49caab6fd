{#- Reading raw tables: one version per record of each client, and the lineage every staging
    row keeps. A raw row's client is `_client_id` (a slug such as `demo`): the same primary key
    under two clients is two records, never one. -#}

{% macro keep_latest_version() -%}
{#- A record can land in several partitions and runs: per client and primary key, the most
    recently fetched one wins (then the most recently loaded, then the latest partition, so
    the choice is stable). -#}
qualify row_number() over (
    partition by _client_id, _primary_key
    order by _fetched_at desc, _loaded_at desc, _partition_key desc
) = 1
{%- endmacro %}

{% macro record_key(source_name, endpoint, id_expr, client_id_expr='client_id') -%}
{#- The platform-wide key of a raw record, `<client id>:<source>:<endpoint>:<primary key>`:
    unique across clients (a client id has no colon, so the prefix is unambiguous), and the
    same key the identity staging gives customer records, so facts find their customer
    cluster, and only among their own client's. -#}
{{ client_id_expr }} || ':{{ source_name }}:{{ endpoint }}:' || {{ id_expr }}
{%- endmacro %}

{% macro raw_lineage_columns(source_name, endpoint) -%}
_client_id as client_id,
        {{ record_key(source_name, endpoint, '_primary_key', '_client_id') }} as source_record_key,
        _primary_key as source_record_id,
        _partition_key,
        _run_id,
        _fetched_at,
        _loaded_at
{%- endmacro %}
