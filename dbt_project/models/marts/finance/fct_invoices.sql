-- Invoices that passed validation, one row each, with the customer they resolve to (one of
-- their own client's), amounts in their own currency and in the reporting currency (at the
-- invoice date's rate).
with invoices as (

    select * from {{ ref('stg_billing__invoices') }}
    where failed_rule is null

),

customer_clusters as (

    select client_id, record_key, customer_id from {{ ref('int_customer_clusters') }}

),

final as (

    select
        invoices.client_id,
        invoices.invoice_id,
        customer_clusters.customer_id,
        customer_clusters.customer_id is not null as is_customer_resolved,
        invoices.billing_customer_id,
        invoices.customer_record_key,
        invoices.subscription_id,
        invoices.subscription_record_key,
        invoices.status,
        invoices.status = 'paid' as is_paid,
        invoices.currency,
        invoices.amount_due,
        invoices.amount_due_minor,
        invoices.reporting_currency,
        invoices.fx_rate_to_reporting,
        invoices.amount_due_reporting,
        invoices.created_at,
        invoices.invoice_date,
        invoices.period_start_at,
        invoices.period_end_at,
        invoices.source_record_key,
        invoices._partition_key as source_partition_key,
        invoices._run_id as source_run_id,
        invoices._fetched_at as source_fetched_at
    from invoices
    -- left join: an invoice whose billing customer is not (yet) resolved is still revenue;
    -- it stays, with a null customer_id and is_customer_resolved = false.
    left join customer_clusters
        on customer_clusters.client_id = invoices.client_id
        and customer_clusters.record_key = invoices.customer_record_key

)

select * from final
