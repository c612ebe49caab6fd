{% macro quarantined(staging_model, source_name, endpoint) %}
{#- The rows of a staging model that broke a validation rule, with the raw record exactly as
    it was received (matched on client, primary key and partition), so the fix can start
    from it. -#}
with quarantined as (

    select * from {{ ref(staging_model) }}
    where failed_rule is not null

),

raw_records as (

    select _client_id, _primary_key, _partition_key, record
    from {{ source(source_name, endpoint) }}

),

final as (

    select
        quarantined.*,
        raw_records.record as raw_record
    from quarantined
    -- left join: a quarantined row is kept even if its raw row has since been replaced
    left join raw_records
        on raw_records._client_id = quarantined.client_id
        and raw_records._primary_key = quarantined.source_record_id
        and raw_records._partition_key = quarantined._partition_key

)

select * from final
{% endmacro %}
