-- Product usage per customer, day (UTC) and event type: how many events, how much quantity,
-- from how many analytics users. Incremental: a run rebuilds whole (delete+insert on
-- usage_date) the days that got an event loaded since the last run, so late events land in
-- their own day and a day is never half counted, and the days whose users entity resolution
-- has since moved to another customer, so attribution follows the latest clustering.
{{ config(
    materialized='incremental',
    unique_key='usage_date',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
) }}

with events as (

    select * from {{ ref('stg_analytics__events') }}

),

customer_clusters as (

    select record_key, customer_id from {{ ref('int_customer_clusters') }}

),

{% if is_incremental() %}
days_with_new_events as (

    -- Quarantined rows count too: an event that turned bad must leave its day's totals.
    select distinct event_date as usage_date from events
    where _loaded_at > (select coalesce(max(last_loaded_at), '-infinity'::timestamptz)
                        from {{ this }})

),

built_attributions as (

    select usage_date, customer_id, unnest(user_record_keys) as user_record_key
    from {{ this }}

),

days_with_moved_users as (

    select distinct built_attributions.usage_date
    from built_attributions
    left join customer_clusters
        on customer_clusters.record_key = built_attributions.user_record_key
    where customer_clusters.customer_id is distinct from built_attributions.customer_id

),

days_to_build as (

    select usage_date from days_with_new_events
    union
    select usage_date from days_with_moved_users

),
{% endif %}

valid_events as (

    select * from events
    where failed_rule is null
    {% if is_incremental() %}
        and event_date in (select usage_date from days_to_build)
    {% endif %}

),

resolved_events as (

    select
        valid_events.*,
        customer_clusters.customer_id
    from valid_events
    -- left join: events of an analytics user not (yet) resolved to a customer still count;
    -- they are grouped under a null customer_id with is_customer_resolved = false.
    left join customer_clusters
        on customer_clusters.record_key = valid_events.user_record_key

),

final as (

    select
        event_date as usage_date,
        customer_id,
        event_type,
        customer_id is not null as is_customer_resolved,
        count(*) as event_count,
        sum(quantity) as total_quantity,
        count(distinct analytics_user_id) as analytics_user_count,
        min(occurred_at) as first_event_at,
        max(occurred_at) as last_event_at,
        list(distinct user_record_key order by user_record_key) as user_record_keys,
        list(source_record_key order by event_id) as source_record_keys,
        max(_loaded_at) as last_loaded_at
    from resolved_events
    group by event_date, customer_id, event_type

)

select * from final
