-- Every customer record of every source and client, one row each, in canonical normalized
-- form. The list of staging models comes from the specs (macros/generated), so a new
-- YAML-only source joins here without an edit.
{%- set identity_models = customer_identity_models() %}

with unioned as (

    {%- for model in identity_models %}
    select
        client_id, record_key, source_system, source_endpoint, source_record_id, email, phone,
        first_name, last_name, date_of_birth, company, address_line, city, postcode, state,
        country, external_id, identifiers, source_updated_at, fetched_at
    from {{ ref(model) }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}

),

final as (

    select * from unioned

)

select * from final
