-- Billing invoices: one row per invoice (its latest fetched version), typed, UTC, the amount in
-- major units of its currency and in the reporting currency, the status unified. A row that
-- breaks a rule names it in failed_rule: qua_invoices keeps it, the marts never see it.
with source as (

    select * from {{ source('billing', 'invoices') }}

),

deduped as (

    select * from source
    {{ keep_latest_version() }}

),

renamed as (

    select
        record ->> '$.id' as invoice_id,
        record ->> '$.customer' as billing_customer_id,
        record ->> '$.subscription' as subscription_id,
        -- The vendor's 2025 API version renamed `status` to `state`.
        lower(trim(coalesce(record ->> '$.status', record ->> '$.state'))) as status_raw,
        upper(trim(record ->> '$.currency')) as currency,
        record ->> '$.amount_due' as amount_due_raw,
        json_type(record, '$.amount_due') as amount_due_json_type,
        record ->> '$.created' as created_raw,
        record ->> '$.period_start' as period_start_raw,
        record ->> '$.period_end' as period_end_raw,
        {{ raw_lineage_columns('billing', 'invoices') }}
    from deduped

),

typed as (

    select
        *,
        {{ unified_status('invoice', 'renamed.status_raw') }} as status,
        {{ currency_exponent('renamed.currency') }} as currency_exponent,
        -- Integers are minor units; the 2025 API version sends major units as a string.
        case when amount_due_json_type in ('UBIGINT', 'BIGINT')
             then try_cast(amount_due_raw as bigint) end as amount_due_minor_sent,
        case when amount_due_json_type = 'VARCHAR'
             then try_cast(trim(amount_due_raw) as decimal(18, 4)) end as amount_due_major_sent,
        {{ utc_timestamp('created_raw') }} as created_at,
        {{ utc_timestamp('period_start_raw') }} as period_start_at,
        {{ utc_timestamp('period_end_raw') }} as period_end_at,
        -- A date, not the timestamp: the rate lookup then runs once per currency and day.
        cast(created_at as date) as invoice_date
    from renamed

),

amounts as (

    select
        *,
        coalesce({{ minor_to_major('amount_due_minor_sent', 'currency_exponent') }},
                 amount_due_major_sent) as amount_due,
        coalesce(amount_due_minor_sent,
                 {{ major_to_minor('amount_due_major_sent', 'currency_exponent') }}) as amount_due_minor,
        {{ fx_rate_to_reporting('typed.currency', 'typed.invoice_date') }} as fx_rate_to_reporting
    from typed

),

validated as (

    select
        *,
        {{ failed_rules([
            ('missing_invoice_id', 'invoice_id is null'),
            ('missing_customer_id', 'billing_customer_id is null'),
            ('unknown_status', 'status is null'),
            ('unknown_currency', 'currency_exponent is null'),
            ('missing_amount', 'amount_due_raw is null'),
            ('unparseable_amount', 'amount_due is null'),
            ('negative_amount', 'amount_due < 0'),
            ('amount_finer_than_currency', 'amount_due * cast(power(10, currency_exponent) as bigint) <> amount_due_minor'),
            ('unparseable_created_at', 'created_at is null'),
        ]) }} as failed_rules
    from amounts

),

final as (

    select
        client_id,
        invoice_id,
        billing_customer_id,
        {{ record_key('billing', 'customers', 'billing_customer_id') }} as customer_record_key,
        subscription_id,
        {{ record_key('billing', 'subscriptions', 'subscription_id') }} as subscription_record_key,
        status,
        status_raw,
        currency,
        amount_due,
        amount_due_minor,
        amount_due_raw,
        '{{ reporting_currency() }}' as reporting_currency,
        fx_rate_to_reporting,
        {{ to_reporting_amount('amount_due', 'fx_rate_to_reporting') }} as amount_due_reporting,
        created_at,
        invoice_date,
        period_start_at,
        period_end_at,
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
