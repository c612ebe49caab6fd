-- Product usage events: one row per event of each client (latest fetched version), typed, UTC,
-- the `properties` object flattened. Incremental: a run reads only the events with a raw row
-- loaded since the last run that built that client's events (every stored version of those
-- events, so the latest fetched one still wins) and replaces them by key. A row that breaks a
-- rule names it in failed_rule: qua_events keeps it, the marts never see it.
{{ config(
    materialized='incremental',
    unique_key='source_record_key',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
) }}

with source as (

    select * from {{ source('analytics', 'events') }}

),

{% if is_incremental() %}
built_until as (

    -- per client, the latest raw load this model has already read (a new client has none)
    select client_id, max(_loaded_at) as loaded_at
    from {{ this }}
    group by client_id

),

events_with_new_versions as (

    select distinct source._client_id, source._primary_key
    from source
    left join built_until on built_until.client_id = source._client_id
    where source._loaded_at > coalesce(built_until.loaded_at, '-infinity'::timestamptz)

),
{% endif %}

selected as (

    select source.* from source
    {% if is_incremental() %}
    semi join events_with_new_versions using (_client_id, _primary_key)
    {% endif %}

),

deduped as (

    select * from selected
    {{ keep_latest_version() }}

),

renamed as (

    select
        try_cast(record ->> '$.event_id' as bigint) as event_id,
        record ->> '$.user_id' as analytics_user_id,
        -- The vendor's v2 rollout renamed `event_type` to `type` and sends quantity as a string.
        lower(trim(coalesce(record ->> '$.event_type', record ->> '$.type'))) as event_type,
        record ->> '$.quantity' as quantity_raw,
        record ->> '$.properties.platform' as platform,
        record ->> '$.properties.path' as page_path,
        record ->> '$.properties.feature' as feature,
        record ->> '$.properties.endpoint' as api_endpoint,
        record ->> '$.properties.method' as login_method,
        record ->> '$.properties.format' as export_format,
        record ->> '$.properties.role' as invited_role,
        record -> '$.properties' as properties,
        record ->> '$.occurred_at' as occurred_raw,
        {{ raw_lineage_columns('analytics', 'events') }}
    from deduped

),

typed as (

    select
        *,
        try_cast(trim(quantity_raw) as bigint) as quantity,
        {{ utc_timestamp('occurred_raw') }} as occurred_at
    from renamed

),

validated as (

    select
        *,
        {{ failed_rules([
            ('missing_event_id', 'event_id is null'),
            ('missing_user_id', 'analytics_user_id is null'),
            ('missing_event_type', 'event_type is null'),
            ('unparseable_occurred_at', 'occurred_at is null'),
            ('unparseable_quantity', 'quantity is null'),
            ('negative_quantity', 'quantity < 0'),
        ]) }} as failed_rules
    from typed

),

final as (

    select
        client_id,
        event_id,
        analytics_user_id,
        {{ record_key('analytics', 'users', 'analytics_user_id') }} as user_record_key,
        event_type,
        quantity,
        quantity_raw,
        occurred_at,
        cast(occurred_at as date) as event_date,
        platform,
        page_path,
        feature,
        api_endpoint,
        login_method,
        export_format,
        invited_role,
        properties,
        failed_rules[1] as failed_rule,
        failed_rules,
        source_record_key,
        source_record_id,
        _partition_key,
        _run_id,
        _fetched_at,
        _loaded_at
    from validated

)

select * from final
