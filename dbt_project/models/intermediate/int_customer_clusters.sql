{#-
    Customer records grouped into people: pairs scoring at least `er_match_probability_threshold`
    are edges, connected components are clusters (every record is in exactly one; a record
    with no edge is a cluster of one), and each cluster gets a customer_id that stays stable.
    Pairs are always one client's (blocking is per client), so a cluster is one client's
    records and a customer belongs to exactly one client.

    Id rule. A new cluster's id is md5 of its smallest record_key, which starts with the client
    id, so two clients' customers never share an id, even with identical records. The model is
    incremental and reads the ids it gave last time ({{ this }}; record keys carry the client,
    so the history is per client), so on a re-run:
      - a cluster that grew, or lost records, keeps the id most of its records carried;
      - when clusters merge, the merged cluster keeps the id carried by most of its records
        (tie: the smaller id); the other id is retired;
      - when a cluster splits, the part holding most of the old records keeps the id and the
        other parts get new ids;
      - a new id is never one another cluster still carries (on such a clash it is md5 of
        all the cluster's keys joined, with a trailing '|').
    Limits: ids follow records, not people: a cluster made only of new records gets a new id
    even if it is a person seen before under records since deleted; changing the weights or
    the threshold can merge or split clusters (the rules above then apply); `dbt build
    --full-refresh` forgets the history and recomputes every id by the first rule.
-#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='record_key',
    on_schema_change='sync_all_columns',
    post_hook="delete from {{ this }} where record_key not in
               (select record_key from {{ ref('int_customer_identities_enriched') }})"
) }}

with recursive identities as (

    select client_id, record_key, source_system, source_endpoint, source_record_id
    from {{ ref('int_customer_identities_enriched') }}

),

matches as (

    select left_key, right_key
    from {{ ref('int_customer_pair_scores') }}
    where match_probability >= {{ var('er_match_probability_threshold') }}

),

edges as (

    select left_key as from_key, right_key as to_key from matches
    union all
    select right_key, left_key from matches

),

components(record_key, component_key) using key (record_key) as (

    -- label propagation: every record starts as its own component and takes the smallest
    -- label among its neighbours until no label changes (only changed records propagate)
    select record_key, record_key from identities
    union
    select edges.to_key, min(components.component_key)
    from components
    join edges on edges.from_key = components.record_key
    join recurring.components as current_label on current_label.record_key = edges.to_key
    group by edges.to_key
    having min(components.component_key) < min(current_label.component_key)

),

previous_ids as (

    {% if is_incremental() %}
    -- a row built before clients existed has a key without a client
    -- (`<source>:<endpoint>:<id>`): it is the record of var client_id_before_clients, as the
    -- raw rows of that time are, so upgrading a warehouse keeps its customer ids
    select
        case when record_key = source_system || ':' || source_endpoint || ':' || source_record_id
             then '{{ var('client_id_before_clients') }}:' || record_key
             else record_key
        end as record_key,
        customer_id
    from {{ this }}
    {% else %}
    select null::varchar as record_key, null::varchar as customer_id where false
    {% endif %}

),

claims as (

    -- how many records of each component carried each earlier id
    select components.component_key, previous_ids.customer_id, count(*) as carried_by
    from components
    join previous_ids using (record_key)
    group by all

),

awarded as (

    -- an earlier id goes to the component holding most of its records ...
    select * from claims
    qualify row_number() over (partition by customer_id
                               order by carried_by desc, component_key) = 1

),

kept as (

    -- ... and a component awarded several (a merge) keeps the most carried one
    select component_key, customer_id from awarded
    qualify row_number() over (partition by component_key
                               order by carried_by desc, customer_id) = 1

),

component_sizes as (

    select component_key, count(*) as cluster_size,
           md5(string_agg(record_key, '|' order by record_key) || '|') as members_hash
    from components
    group by component_key

),

component_ids as (

    select
        component_sizes.component_key,
        component_sizes.cluster_size,
        case
            when kept.customer_id is not null then kept.customer_id
            when md5(component_sizes.component_key) in (select customer_id from claims)
                then component_sizes.members_hash
            else md5(component_sizes.component_key)
        end as customer_id,
        case when kept.customer_id is not null then 'kept' else 'new' end as customer_id_origin
    from component_sizes
    left join kept using (component_key)

),

final as (

    select
        identities.client_id,
        identities.record_key,
        component_ids.customer_id,
        component_ids.cluster_size,
        identities.source_system,
        identities.source_endpoint,
        identities.source_record_id,
        component_ids.customer_id_origin
    from identities
    join components using (record_key)
    join component_ids using (component_key)

)

select * from final
