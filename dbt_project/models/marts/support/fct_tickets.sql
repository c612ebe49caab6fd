-- Helpdesk tickets that passed validation, one row each, with the customer they resolve to
-- (always one of their own client's) and what their (valid) comments add: how many are public, when the first and last came.
with tickets as (

    select * from {{ ref('stg_support__tickets') }}
    where failed_rule is null

),

comments as (

    select * from {{ ref('stg_support__ticket_comments') }}
    where failed_rule is null

),

comments_per_ticket as (

    select
        client_id,
        ticket_id,
        count(*) as comments_loaded,
        count(*) filter (where is_public) as public_comments_loaded,
        min(created_at) as first_comment_at,
        max(created_at) as last_comment_at
    from comments
    group by client_id, ticket_id

),

customer_clusters as (

    select client_id, record_key, customer_id from {{ ref('int_customer_clusters') }}

),

final as (

    select
        tickets.client_id,
        tickets.ticket_id,
        customer_clusters.customer_id,
        customer_clusters.customer_id is not null as is_customer_resolved,
        tickets.support_customer_id,
        tickets.customer_record_key,
        tickets.subject,
        tickets.status,
        tickets.is_open,
        tickets.priority,
        tickets.channel,
        tickets.comment_count,
        coalesce(comments_per_ticket.comments_loaded, 0) as comments_loaded,
        coalesce(comments_per_ticket.public_comments_loaded, 0) as public_comments_loaded,
        comments_per_ticket.first_comment_at,
        comments_per_ticket.last_comment_at,
        tickets.created_at,
        tickets.updated_at,
        tickets.source_record_key,
        tickets._partition_key as source_partition_key,
        tickets._run_id as source_run_id,
        tickets._fetched_at as source_fetched_at
    from tickets
    -- left join: a ticket without comments (or whose comments failed to load) is kept.
    left join comments_per_ticket
        on comments_per_ticket.client_id = tickets.client_id
        and comments_per_ticket.ticket_id = tickets.ticket_id
    -- left join: a ticket whose requester is not (yet) resolved is kept, with a null
    -- customer_id and is_customer_resolved = false.
    left join customer_clusters
        on customer_clusters.client_id = tickets.client_id
        and customer_clusters.record_key = tickets.customer_record_key

)

select * from final
