-- Billing subscriptions: one row per subscription (latest fetched version), typed, UTC, the
-- monthly amount in major units and in the reporting currency, the status unified. A row that
-- breaks a rule names it in failed_rule: qua_subscriptions keeps it, the marts never see it.
with source as (

    select * from {{ source('billing', 'subscriptions') }}

),

deduped as (

    select * from source
    {{ keep_latest_version() }}

),

renamed as (

    select
        record ->> '$.id' as subscription_id,
        record ->> '$.customer' as billing_customer_id,
        lower(trim(record ->> '$.plan')) as plan,
        lower(trim(record ->> '$.status')) as status_raw,
        upper(trim(record ->> '$.currency')) as currency,
        -- The plan's monthly price, in minor units.
        record ->> '$.amount' as amount_raw,
        json_type(record, '$.amount') as amount_json_type,
        record ->> '$.current_period_start' as current_period_start_raw,
        record ->> '$.created' as created_raw,
        {{ raw_lineage_columns('billing', 'subscriptions') }}
    from deduped

),

typed as (

    select
        *,
        {{ unified_status('subscription', 'renamed.status_raw') }} as status,
        {{ currency_exponent('renamed.currency') }} as currency_exponent,
        case when amount_json_type in ('UBIGINT', 'BIGINT')
             then try_cast(amount_raw as bigint) end as monthly_amount_minor,
        {{ utc_timestamp('current_period_start_raw') }} as current_period_start_at,
        {{ utc_timestamp('created_raw') }} as created_at,
        -- Converted at the rate of the period being billed now. A date, not the timestamp:
        -- the rate lookup then runs once per currency and day.
        cast(coalesce(current_period_start_at, created_at) as date) as fx_date
    from renamed

),

amounts as (

    select
        *,
        {{ minor_to_major('monthly_amount_minor', 'currency_exponent') }} as monthly_amount,
        {{ fx_rate_to_reporting('typed.currency', 'typed.fx_date') }} as fx_rate_to_reporting
    from typed

),

validated as (

    select
        *,
        {{ failed_rules([
            ('missing_subscription_id', 'subscription_id is null'),
            ('missing_customer_id', 'billing_customer_id is null'),
            ('unknown_status', 'status is null'),
            ('unknown_currency', 'currency_exponent is null'),
            ('missing_amount', 'amount_raw is null'),
            ('unparseable_amount', 'monthly_amount is null'),
            ('negative_amount', 'monthly_amount < 0'),
            ('unparseable_created_at', 'created_at is null'),
        ]) }} as failed_rules
    from amounts

),

final as (

    select
        client_id,
        subscription_id,
        billing_customer_id,
        {{ record_key('billing', 'customers', 'billing_customer_id') }} as customer_record_key,
        plan,
        status,
        status_raw,
        currency,
        monthly_amount,
        monthly_amount_minor,
        amount_raw,
        '{{ reporting_currency() }}' as reporting_currency,
        fx_rate_to_reporting,
        {{ to_reporting_amount('monthly_amount', 'fx_rate_to_reporting') }} as monthly_amount_reporting,
        fx_date,
        current_period_start_at,
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
