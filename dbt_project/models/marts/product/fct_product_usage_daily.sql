-- Product usage per client, customer, day (UTC) and event type: how many events, how much
-- quantity, from how many analytics users. Incremental: a run rebuilds whole (delete+insert on
-- client_id and usage_date) each client's days that got an event loaded since the last run that
-- built that client's usage, so late events land in their own day and a day is never half
-- counted, and each client's days whose users entity resolution has since moved to another
-- customer, so attribution follows the latest clustering. One client's new events never
-- rebuild another client's days.
{{ config(
    materialized='incremental',
    unique_key=['client_id', 'usage_date'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
) }}

with events as (

    select * from {{ ref('stg_analytics__events') }}

),

customer_clusters as (

    select client_id, record_key, customer_id from {{ ref('int_customer_clusters') }}

),

{% if is_incremental() %}
built_until as (

    -- per client, the latest event load already counted (a client new here has none)
    select client_id, max(last_loaded_at) as loaded_at
    from {{ this }}
    group by client_id

),

days_with_new_events as (

    -- Quarantined rows count too: an event that turned bad must leave its day's totals.
    select distinct events.client_id, events.event_date as usage_date
    from events
    left join built_until on built_until.client_id = events.client_id
    where events._loaded_at > coalesce(built_until.loaded_at, '-infinity'::timestamptz)

),

built_attributions as (

    select client_id, usage_date, customer_id, unnest(user_record_keys) as user_record_key
    from {{ this }}

),

days_with_moved_users as (

    select distinct built_attributions.client_id, built_attributions.usage_date
    from built_attributions
    left join customer_clusters
        on customer_clusters.client_id = built_attributions.client_id
        and customer_clusters.record_key = built_attributions.user_record_key
    where customer_clusters.customer_id is distinct from built_attributions.customer_id

),

days_to_build as (

    select client_id, usage_date from days_with_new_events
    union
    select client_id, usage_date from days_with_moved_users

),
{% endif %}

valid_events as (

    select events.* from events
    {% if is_incremental() %}
    semi join days_to_build
        on days_to_build.client_id = events.client_id
        and days_to_build.usage_date = events.event_date
    {% endif %}
    where events.failed_rule is null

),

resolved_events as (

    select
        valid_events.*,
        customer_clusters.customer_id
    from valid_events
    -- left join: events of an analytics user not (yet) resolved to a customer still count;
    -- they are grouped under a null customer_id with is_customer_resolved = false. The
    -- customer is always one of the event's own client.
    left join customer_clusters
        on customer_clusters.client_id = valid_events.client_id
        and customer_clusters.record_key = valid_events.user_record_key

),

final as (

    select
        client_id,
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
    group by client_id, event_date, customer_id, event_type

)

select * from final
