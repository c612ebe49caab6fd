-- Billing payments: one row per payment (latest fetched version), typed, UTC, the amount (sent
-- as a decimal string in major units) in its currency and in the reporting currency, the
-- status unified. A row that breaks a rule names it in failed_rule: qua_payments keeps it,
-- the marts never see it.
with source as (

    select * from {{ source('billing', 'payments') }}

),

deduped as (

    select * from source
    {{ keep_latest_version() }}

),

renamed as (

    select
        record ->> '$.id' as payment_id,
        record ->> '$.invoice' as invoice_id,
        record ->> '$.customer' as billing_customer_id,
        lower(trim(record ->> '$.status')) as status_raw,
        upper(trim(record ->> '$.currency')) as currency,
        record ->> '$.amount' as amount_raw,
        record ->> '$.created' as created_raw,
        {{ raw_lineage_columns('billing', 'payments') }}
    from deduped

),

typed as (

    select
        *,
        {{ unified_status('payment', 'renamed.status_raw') }} as status,
        {{ currency_exponent('renamed.currency') }} as currency_exponent,
        try_cast(trim(amount_raw) as decimal(18, 4)) as amount,
        {{ utc_timestamp('created_raw') }} as created_at,
        -- A date, not the timestamp: the rate lookup then runs once per currency and day.
        cast(created_at as date) as payment_date
    from renamed

),

amounts as (

    select
        *,
        {{ major_to_minor('amount', 'currency_exponent') }} as amount_minor,
        {{ fx_rate_to_reporting('typed.currency', 'typed.payment_date') }} as fx_rate_to_reporting
    from typed

),

validated as (

    select
        *,
        {{ failed_rules([
            ('missing_payment_id', 'payment_id is null'),
            ('missing_customer_id', 'billing_customer_id is null'),
            ('missing_invoice_id', 'invoice_id is null'),
            ('unknown_status', 'status is null'),
            ('unknown_currency', 'currency_exponent is null'),
            ('missing_amount', 'amount_raw is null'),
            ('unparseable_amount', 'amount is null'),
            ('negative_amount', 'amount < 0'),
            ('amount_finer_than_currency', 'amount * cast(power(10, currency_exponent) as bigint) <> amount_minor'),
            ('unparseable_created_at', 'created_at is null'),
        ]) }} as failed_rules
    from amounts

),

final as (

    select
        client_id,
        payment_id,
        invoice_id,
        {{ record_key('billing', 'invoices', 'invoice_id') }} as invoice_record_key,
        billing_customer_id,
        {{ record_key('billing', 'customers', 'billing_customer_id') }} as customer_record_key,
        status,
        status_raw,
        currency,
        amount,
        amount_minor,
        amount_raw,
        '{{ reporting_currency() }}' as reporting_currency,
        fx_rate_to_reporting,
        {{ to_reporting_amount('amount', 'fx_rate_to_reporting') }} as amount_reporting,
        created_at,
        payment_date,
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
