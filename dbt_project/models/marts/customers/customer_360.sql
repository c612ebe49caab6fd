-- One row per customer (every dim_customers row, each one client's): what they pay (MRR,
-- lifetime revenue), how they use the product (last 30 days), how they are served (open
-- tickets), and when they were last active. Relative measures are taken as of var
-- `as_of_date` (default: the latest usage day of the customer's client, so one client's data
-- never moves another's figures), and a rebuild of the same data gives the same numbers.
-- Every aggregate joins on client_id as well as customer_id: a fact counts only for a
-- customer of its own client.
{%- set as_of_date = var('as_of_date', none) %}

with customers as (

    select client_id, customer_id from {{ ref('dim_customers') }}

),

cluster_records as (

    select
        client_id,
        customer_id,
        list(record_key order by record_key) as source_record_keys
    from {{ ref('int_customer_clusters') }}
    group by client_id, customer_id

),

usage_days as (

    select * from {{ ref('fct_product_usage_daily') }}

),

as_of as (

    select
        clients.client_id,
        {%- if as_of_date %}
        cast('{{ as_of_date }}' as date) as as_of_date
        {%- else %}
        coalesce(max(usage_days.usage_date), current_date) as as_of_date
        {%- endif %}
    from (select distinct client_id from customers) as clients
    left join usage_days on usage_days.client_id = clients.client_id
    group by clients.client_id

),

subscriptions_per_customer as (

    select
        client_id,
        customer_id,
        count(*) filter (where is_active) as active_subscriptions,
        coalesce(sum(monthly_amount_reporting) filter (where is_active), 0) as mrr_reporting
    from {{ ref('fct_subscriptions') }}
    where customer_id is not null
    group by client_id, customer_id

),

payments_per_customer as (

    select
        payments.client_id,
        payments.customer_id,
        count(*) as succeeded_payments,
        sum(payments.amount_reporting) as lifetime_revenue_reporting,
        max(payments.created_at) as last_payment_at
    from {{ ref('fct_payments') }} as payments
    join as_of on as_of.client_id = payments.client_id
    where payments.customer_id is not null
        and payments.is_succeeded
        and payments.payment_date <= as_of.as_of_date
    group by payments.client_id, payments.customer_id

),

tickets_per_customer as (

    select
        tickets.client_id,
        tickets.customer_id,
        count(*) filter (where tickets.is_open) as open_tickets,
        count(*) as tickets,
        max(tickets.updated_at) filter (where cast(tickets.updated_at as date) <= as_of.as_of_date)
            as last_ticket_activity_at
    from {{ ref('fct_tickets') }} as tickets
    join as_of on as_of.client_id = tickets.client_id
    where tickets.customer_id is not null
    group by tickets.client_id, tickets.customer_id

),

usage_per_customer as (

    select
        usage_days.client_id,
        usage_days.customer_id,
        max(usage_days.last_event_at) as last_event_at,
        coalesce(sum(usage_days.event_count) filter (
            where usage_days.usage_date > as_of.as_of_date - 30), 0) as usage_events_30d,
        coalesce(sum(usage_days.total_quantity) filter (
            where usage_days.usage_date > as_of.as_of_date - 30), 0) as usage_quantity_30d,
        count(distinct usage_days.usage_date) filter (
            where usage_days.usage_date > as_of.as_of_date - 30) as active_days_30d
    from usage_days
    join as_of on as_of.client_id = usage_days.client_id
    where usage_days.customer_id is not null
        and usage_days.usage_date <= as_of.as_of_date
    group by usage_days.client_id, usage_days.customer_id

),

final as (

    select
        customers.client_id,
        customers.customer_id,
        '{{ reporting_currency() }}' as reporting_currency,
        coalesce(subscriptions_per_customer.active_subscriptions, 0) as active_subscriptions,
        coalesce(subscriptions_per_customer.mrr_reporting, 0) as mrr_reporting,
        coalesce(payments_per_customer.succeeded_payments, 0) as succeeded_payments,
        coalesce(payments_per_customer.lifetime_revenue_reporting, 0) as lifetime_revenue_reporting,
        coalesce(tickets_per_customer.open_tickets, 0) as open_tickets,
        coalesce(tickets_per_customer.tickets, 0) as tickets,
        coalesce(usage_per_customer.usage_events_30d, 0) as usage_events_30d,
        coalesce(usage_per_customer.usage_quantity_30d, 0) as usage_quantity_30d,
        coalesce(usage_per_customer.active_days_30d, 0) as active_days_30d,
        usage_per_customer.last_event_at,
        tickets_per_customer.last_ticket_activity_at,
        payments_per_customer.last_payment_at,
        greatest(usage_per_customer.last_event_at,
                 tickets_per_customer.last_ticket_activity_at,
                 payments_per_customer.last_payment_at) as last_activity_at,
        as_of.as_of_date - cast(payments_per_customer.last_payment_at as date)
            as days_since_last_payment,
        as_of.as_of_date,
        cluster_records.source_record_keys
    from customers
    join as_of
        on as_of.client_id = customers.client_id
    -- left joins throughout: every customer gets a row, with zeros where they have no
    -- subscription, payment, ticket or usage.
    left join cluster_records
        on cluster_records.client_id = customers.client_id
        and cluster_records.customer_id = customers.customer_id
    left join subscriptions_per_customer
        on subscriptions_per_customer.client_id = customers.client_id
        and subscriptions_per_customer.customer_id = customers.customer_id
    left join payments_per_customer
        on payments_per_customer.client_id = customers.client_id
        and payments_per_customer.customer_id = customers.customer_id
    left join tickets_per_customer
        on tickets_per_customer.client_id = customers.client_id
        and tickets_per_customer.customer_id = customers.customer_id
    left join usage_per_customer
        on usage_per_customer.client_id = customers.client_id
        and usage_per_customer.customer_id = customers.customer_id

)

select * from final
