{% macro unified_status(entity, raw_value) -%}
{#- The canonical status for a lower-cased, trimmed spelling, from seed `status_map`; null
    for a spelling the seed does not know (the row is then quarantined, never guessed).
    Qualify `raw_value` with its CTE, as for the money lookups. -#}
(select status_map.status from {{ ref('status_map') }} as status_map
 where status_map.entity = '{{ entity }}' and status_map.raw_value = {{ raw_value }})
{%- endmacro %}
