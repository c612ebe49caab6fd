-- CRM companies (reference data): one row per company (latest fetched version), typed, UTC.
-- A row that breaks a rule names it in failed_rule: qua_companies keeps it.
with source as (

    select * from {{ source('crm', 'companies') }}

),

deduped as (

    select * from source
    {{ keep_latest_version() }}

),

renamed as (

    select
        record ->> '$.id' as company_id,
        nullif(trim(record ->> '$.name'), '') as company_name,
        lower(nullif(trim(record ->> '$.domain'), '')) as domain,
        lower(nullif(trim(record ->> '$.industry'), '')) as industry,
        record ->> '$.employee_count' as employee_count_raw,
        -- Stored by several integrations: epoch seconds, ISO with an offset, ISO in UTC.
        record ->> '$.updated_at' as updated_raw,
        {{ raw_lineage_columns('crm', 'companies') }}
    from deduped

),

typed as (

    select
        *,
        try_cast(employee_count_raw as integer) as employee_count,
        {{ utc_timestamp('updated_raw') }} as updated_at
    from renamed

),

validated as (

    select
        *,
        {{ failed_rules([
            ('missing_company_id', 'company_id is null'),
            ('missing_company_name', 'company_name is null'),
            ('unparseable_employee_count', 'employee_count_raw is not null and employee_count is null'),
            ('negative_employee_count', 'employee_count < 0'),
        ]) }} as failed_rules
    from typed

),

final as (

    select
        client_id,
        company_id,
        company_name,
        domain,
        industry,
        employee_count,
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
