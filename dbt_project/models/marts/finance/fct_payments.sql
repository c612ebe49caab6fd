-- Payments that passed validation, one row each, with the customer they resolve to (one of
-- their own client's), amounts in their own currency and in the reporting currency (at the
-- payment date's rate).
with payments as (

    select * from {{ ref('stg_billing__payments') }}
    where failed_rule is null

),

customer_clusters as (

    select client_id, record_key, customer_id from {{ ref('int_customer_clusters') }}

),

final as (

    select
        payments.client_id,
        payments.payment_id,
        customer_clusters.customer_id,
        customer_clusters.customer_id is not null as is_customer_resolved,
        payments.billing_customer_id,
        payments.customer_record_key,
        payments.invoice_id,
        payments.invoice_record_key,
        payments.status,
        payments.status = 'succeeded' as is_succeeded,
        payments.currency,
        payments.amount,
        payments.amount_minor,
        payments.reporting_currency,
        payments.fx_rate_to_reporting,
        payments.amount_reporting,
        payments.created_at,
        payments.payment_date,
        payments.source_record_key,
        payments._partition_key as source_partition_key,
        payments._run_id as source_run_id,
        payments._fetched_at as source_fetched_at
    from payments
    -- left join: a payment whose billing customer is not (yet) resolved is still money
    -- received; it stays, with a null customer_id and is_customer_resolved = false.
    left join customer_clusters
        on customer_clusters.client_id = payments.client_id
        and customer_clusters.record_key = payments.customer_record_key

)

select * from final
