-- Helpdesk tickets: one row per ticket (latest fetched version), the GraphQL node flattened
-- (customer { id } becomes support_customer_id, the comments connection its counts; the
-- comments themselves are stg_support__ticket_comments), typed, UTC, the status unified. A row
-- that breaks a rule names it in failed_rule: qua_tickets keeps it, the marts never see it.
with source as (

    select * from {{ source('support', 'tickets') }}

),

deduped as (

    select * from source
    {{ keep_latest_version() }}

),

renamed as (

    select
        record ->> '$.id' as ticket_id,
        record ->> '$.customer.id' as support_customer_id,
        record ->> '$.subject' as subject,
        lower(trim(record ->> '$.status')) as status_raw,
        lower(trim(record ->> '$.priority')) as priority,
        lower(trim(record ->> '$.channel')) as channel,
        -- Null when the comments field failed (a GraphQL partial error): unknown, not zero.
        try_cast(record ->> '$.comments.totalCount' as integer) as comment_count,
        json_array_length(record, '$.comments.edges') as comments_loaded,
        record ->> '$.createdAt' as created_raw,
        record ->> '$.updatedAt' as updated_raw,
        {{ raw_lineage_columns('support', 'tickets') }}
    from deduped

),

typed as (

    select
        *,
        {{ unified_status('ticket', 'renamed.status_raw') }} as status,
        {{ utc_timestamp('created_raw') }} as created_at,
        {{ utc_timestamp('updated_raw') }} as updated_at
    from renamed

),

validated as (

    select
        *,
        {{ failed_rules([
            ('missing_ticket_id', 'ticket_id is null'),
            ('missing_customer_id', 'support_customer_id is null'),
            ('unknown_status', 'status is null'),
            ('unparseable_created_at', 'created_at is null'),
            ('updated_before_created', 'updated_at < created_at'),
        ]) }} as failed_rules
    from typed

),

final as (

    select
        client_id,
        ticket_id,
        support_customer_id,
        {{ record_key('support', 'customers', 'support_customer_id') }} as customer_record_key,
        subject,
        status,
        status_raw,
        status in ('open', 'pending') as is_open,
        priority,
        channel,
        comment_count,
        comments_loaded,
        created_at,
        updated_at,
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
