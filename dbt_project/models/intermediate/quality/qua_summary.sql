-- What the quarantine holds, per client, quarantine model and failed rule: how many records,
-- from how many partitions, and the latest load that sent one. Empty when every record passed.
{%- set quarantines = ['qua_subscriptions', 'qua_invoices', 'qua_payments', 'qua_tickets',
                       'qua_ticket_comments', 'qua_events', 'qua_companies'] %}

with quarantined as (

    {%- for quarantine in quarantines %}
    select
        client_id,
        '{{ quarantine }}' as quarantine_model,
        failed_rule,
        source_record_key,
        _partition_key,
        _loaded_at
    from {{ ref(quarantine) }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}

),

final as (

    select
        client_id,
        quarantine_model,
        failed_rule,
        count(*) as records,
        count(distinct _partition_key) as partitions,
        max(_loaded_at) as last_loaded_at,
        list(source_record_key order by source_record_key)[1:10] as example_record_keys
    from quarantined
    group by client_id, quarantine_model, failed_rule

)

select * from final
