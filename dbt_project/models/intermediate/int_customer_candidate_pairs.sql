-- Pairs of customer records worth comparing: the union of blocking rules, never a cross join,
-- and never two clients' records: a block is one client's records that share a key.
-- Each rule pairs the records that share a key; a record lacking the rule's fields (a source
-- without email or phone) simply takes no part in that rule and is reached by the others.
-- Keys shared by more than `er_max_block_size` of a client's records (a shared inbox, a
-- placeholder phone) are skipped: they say little and would add pairs quadratically.
-- (Measured on the sandbox: these rules keep ~98% of the SaaS vendors' true pairs and >99.5%
-- of the registry variant's, whose records have neither email nor phone; there the
-- identifier, house-number, birth-date and swapped-name rules each find true pairs no other
-- rule does. "Same last name + first initial" added 1.5M pairs at 200k records for 15 more
-- true pairs in 5,000 people, none of them scoring a link.)
-- Every block key is built in one place, `block_keys` below: (client_id, the rule's key), so
-- that two clients' records never pair and one client's records never fill another's block.
{%- set blocking_rules = [
    ('email', "email"),
    ('phone', "phone"),
    ('email_local_part', "case when length(email_local) >= 4 then email_local end"),
    ('identifier', "unnest(list_transform(map_entries(identifiers),
                                          lambda entry: entry.key || ':' || entry.value))"),
    ('last_name_key_first_name', "last_name_key || ':' || unnest(first_name_forms)"),
    ('sorted_names', "least(first_name, last_name) || ':' || greatest(first_name, last_name)"),
    ('first_name_date_of_birth', "unnest(first_name_forms) || ':' || date_of_birth"),
    ('last_name_key_date_of_birth', "last_name_key || ':' || date_of_birth"),
    ('postcode_last_name_start', "postcode || ':' || left(last_name, 3)"),
    ('postcode_address_number', "postcode || ':' || address_number"),
] %}
{%- set max_block_size = var('er_max_block_size', 200) %}
{#- the rules in name order: a pair's rules are a bitmask of these while pairs are grouped (an
    integer aggregate, far cheaper at millions of pairs than a distinct list of strings), then
    spelled out in this order -#}
{%- set rule_names = blocking_rules | map(attribute=0) | sort %}

with identities as (

    select * from {{ ref('int_customer_identities_enriched') }}

),

block_keys as (

    -- one row per record and key it carries under a rule (record keys are unique and a
    -- record's keys under one rule are distinct, so `union all` adds no duplicate); the block
    -- is named by a 64-bit hash of (rule, client, key): joining and counting on one integer
    -- costs far less than on three strings (at 1M records, 12M keys: blocking 62 s -> 21 s).
    -- Two keys hashing alike (odds about 1 in 10^7 at 12M keys) would share a block: a few
    -- more pairs scored, or that block capped; the join still requires one client.
    {%- for rule, key in blocking_rules %}
    select
        {{ 2 ** rule_names.index(rule) }}::bigint as rule_bit,
        client_id,
        hash('{{ rule }}', client_id, block_key) as block_id,
        record_key
    from (select client_id, record_key, {{ key }} as block_key from identities)
    where block_key is not null
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}

),

usable_keys as (

    select * from block_keys
    qualify count(*) over (partition by block_id) <= {{ max_block_size }}

),

blocked as (

    select
        left_side.client_id,
        left_side.record_key as left_key,
        right_side.record_key as right_key,
        left_side.rule_bit
    from usable_keys as left_side
    join usable_keys as right_side
      on left_side.block_id = right_side.block_id
     and left_side.client_id = right_side.client_id
     and left_side.record_key < right_side.record_key

),

grouped as (

    select client_id, left_key, right_key, bit_or(rule_bit) as rule_bits
    from blocked
    group by client_id, left_key, right_key

),

final as (

    select
        client_id,
        left_key,
        right_key,
        list_filter({{ rule_names | list | tojson | replace('"', "'") }},
                    lambda rule, i: (rule_bits >> (i - 1)) & 1 = 1) as blocking_rules
    from grouped

)

select * from final
