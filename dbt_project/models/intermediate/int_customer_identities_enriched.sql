-- Every customer identity with the derived keys entity resolution compares and blocks on:
-- first names resolved through the nickname seed, email parts, house number and street,
-- a phonetic-ish key of the last name (DuckDB has no soundex), and how many of the client's
-- records share each email, phone and identifier (another client's records never count: they
-- are never compared, and one client's data must not change another's results).

with identities as (

    select * from {{ ref('int_customer_identities') }}

),

nicknames as (

    select lower(trim(nickname)) as nickname, lower(trim(canonical_name)) as canonical_name
    from {{ ref('nicknames') }}

),

canonical_names as (

    -- one nickname may stand for several names ("chris": christine, christopher, ...)
    select nickname, list(distinct canonical_name order by canonical_name) as canonical_names
    from nicknames
    group by nickname

),

with_names as (

    select
        identities.*,
        case when identities.first_name is not null then
            list_distinct(list_prepend(identities.first_name,
                                       coalesce(canonical_names.canonical_names, [])))
        end as first_name_forms,
        coalesce(canonical_names.canonical_names[1], identities.first_name)
            as first_name_canonical,
        regexp_replace(coalesce(identities.last_name, ''), '[^a-z]', '', 'g') as last_name_letters
    from identities
    left join canonical_names on canonical_names.nickname = identities.first_name

),

identifier_entries as (

    select client_id, record_key, unnest(map_entries(identifiers)) as entry
    from identities

),

identifier_counts as (

    -- how many of a client's records carry each identifier value: many means a placeholder
    -- (000000000)
    select client_id, entry.key as kind, entry.value as value, count(*) as record_count
    from identifier_entries
    group by all

),

identifier_record_counts as (

    select
        identifier_entries.record_key,
        map_from_entries(list({'key': identifier_counts.kind,
                               'value': identifier_counts.record_count})) as identifier_record_counts
    from identifier_entries
    join identifier_counts
      on identifier_counts.client_id = identifier_entries.client_id
     and identifier_counts.kind = identifier_entries.entry.key
     and identifier_counts.value = identifier_entries.entry.value
    group by identifier_entries.record_key

),

with_keys as (

    select
        *,
        -- repeated letters collapsed ("hoffmann" -> "hofman") before the consonant key
        array_to_string(list_filter(string_split(last_name_letters, ''),
            lambda letter, i: i = 1 or letter != string_split(last_name_letters, '')[i - 1]),
            '') as last_name_collapsed
    from with_names

),

final as (

    select
        client_id,
        record_key,
        source_system,
        source_endpoint,
        source_record_id,
        email,
        -- how many of the client's records carry this email / phone: many means a shared
        -- inbox or switchboard
        case when email is not null then count(*) over (partition by client_id, email) end
            as email_record_count,
        split_part(email, '@', 1) as email_local,
        split_part(email, '@', 2) as email_domain,
        phone,
        case when phone is not null then count(*) over (partition by client_id, phone) end
            as phone_record_count,
        first_name,
        first_name_canonical,
        first_name_forms,
        left(first_name_canonical, 1) as first_initial,
        last_name,
        -- one name and no other: a first name or a last name, nobody knows which
        first_name is not null and last_name is null as is_lone_name,
        nullif(left(left(last_name_collapsed, 1)
                    || regexp_replace(substr(last_name_collapsed, 2), '[aeiouyhw]', '', 'g'), 4),
               '') as last_name_key,
        nullif(concat_ws(' ', first_name, last_name), '') as full_name,
        date_of_birth,
        company,
        nullif(lower(trim(company)), '') as company_key,
        address_line,
        nullif(regexp_extract(address_line, '^([0-9]+)\b', 1), '') as address_number,
        nullif(trim(regexp_replace(address_line, '^[0-9]+\s*', '')), '') as address_street,
        city,
        postcode,
        state,
        country,
        external_id,
        identifiers,
        coalesce(identifier_record_counts.identifier_record_counts,
                 map()::map(varchar, bigint)) as identifier_record_counts,
        source_updated_at,
        fetched_at,
        coalesce(source_updated_at, fetched_at) as recency_at
    from with_keys
    left join identifier_record_counts using (record_key)

)

select * from final
