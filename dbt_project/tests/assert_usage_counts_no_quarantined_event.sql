-- fct_product_usage_daily keeps its events' keys in a list, so the generic
-- excludes_quarantined test cannot see them: no counted event may be in qua_events.
-- (meta.dagster.ref: Dagster shows this test as a check of fct_product_usage_daily.)
{{ config(meta={'dagster': {'ref': {'name': 'fct_product_usage_daily'}}}) }}
with counted as (

    select unnest(source_record_keys) as source_record_key
    from {{ ref('fct_product_usage_daily') }}

)

select counted.source_record_key
from counted
join {{ ref('qua_events') }} as quarantined
    on quarantined.source_record_key = counted.source_record_key
