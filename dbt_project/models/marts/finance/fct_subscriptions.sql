-- Subscriptions that passed validation, one row each, with the customer they resolve to (one
-- of their own client's) and the monthly amount in their own currency and in the reporting
-- currency (at the rate of the current billing period's start).
with subscriptions as (

    select * from {{ ref('stg_billing__subscriptions') }}
    where failed_rule is null

),

customer_clusters as (

    select client_id, record_key, customer_id from {{ ref('int_customer_clusters') }}

),

final as (

    select
        subscriptions.client_id,
        subscriptions.subscription_id,
        customer_clusters.customer_id,
        customer_clusters.customer_id is not null as is_customer_resolved,
        subscriptions.billing_customer_id,
        subscriptions.customer_record_key,
        subscriptions.plan,
        subscriptions.status,
        subscriptions.status = 'active' as is_active,
        subscriptions.currency,
        subscriptions.monthly_amount,
        subscriptions.monthly_amount_minor,
        subscriptions.reporting_currency,
        subscriptions.fx_rate_to_reporting,
        subscriptions.monthly_amount_reporting,
        subscriptions.current_period_start_at,
        subscriptions.created_at,
        subscriptions.source_record_key,
        subscriptions._partition_key as source_partition_key,
        subscriptions._run_id as source_run_id,
        subscriptions._fetched_at as source_fetched_at
    from subscriptions
    -- left join: a subscription whose billing customer is not (yet) resolved still bills;
    -- it stays, with a null customer_id and is_customer_resolved = false.
    left join customer_clusters
        on customer_clusters.client_id = subscriptions.client_id
        and customer_clusters.record_key = subscriptions.customer_record_key

)

select * from final
