{% macro utc_timestamp(expr) -%}
{#- A plain TIMESTAMP holding UTC wall-clock time, from ISO 8601 (any offset) or epoch
    seconds/milliseconds. Plain rather than TIMESTAMPTZ so that `::date` and date_trunc give
    UTC days whatever the session's time zone; every `*_at` column in staging is one. -#}
timezone('UTC', {{ parse_timestamp_utc(expr) }})
{%- endmacro %}
