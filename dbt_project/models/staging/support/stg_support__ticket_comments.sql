-- Ticket comments: one row per comment, unnested from the `comments` connection nested in each
-- ticket's raw record (the latest fetched version of the ticket). Lineage points at the ticket
-- record the comment came in. A row that breaks a rule names it in failed_rule:
-- qua_ticket_comments keeps it, the marts never see it.
with source as (

    select * from {{ source('support', 'tickets') }}

),

deduped as (

    select * from source
    {{ keep_latest_version() }}

),

comment_nodes as (

    select
        *,
        unnest(json_extract(record, '$.comments.edges[*].node')) as node,
        generate_subscripts(json_extract(record, '$.comments.edges[*].node'), 1) as comment_position
    from deduped

),

renamed as (

    select
        node ->> '$.id' as comment_id,
        record ->> '$.id' as ticket_id,
        comment_position,
        node ->> '$.author' as author,
        node ->> '$.body' as body,
        try_cast(node ->> '$.public' as boolean) as is_public,
        node ->> '$.createdAt' as created_raw,
        {{ raw_lineage_columns('support', 'tickets') }}
    from comment_nodes

),

typed as (

    select
        *,
        {{ utc_timestamp('created_raw') }} as created_at
    from renamed

),

validated as (

    select
        *,
        {{ failed_rules([
            ('missing_comment_id', 'comment_id is null'),
            ('missing_ticket_id', 'ticket_id is null'),
            ('unparseable_created_at', 'created_at is null'),
        ]) }} as failed_rules
    from typed

),

final as (

    select
        client_id,
        comment_id,
        ticket_id,
        comment_position,
        author,
        body,
        is_public,
        created_at,
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
