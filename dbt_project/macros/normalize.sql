{#- Normalizers shared by every staging model. Each takes a SQL expression and returns one. -#}

{% macro normalize_email(expr) -%}
{#- Lower-cased and trimmed, plus-alias dropped, dots in Gmail local parts removed: the same
    mailbox however it was typed. Anything that is not an address becomes null. -#}
case when trim({{ expr }}) similar to '[^@\s]+@[^@\s]+\.[^@\s]+' then
    (case
        when split_part(lower(trim({{ expr }})), '@', 2) in ('gmail.com', 'googlemail.com')
        then replace(regexp_replace(split_part(lower(trim({{ expr }})), '@', 1), '\+.*$', ''), '.', '')
        else regexp_replace(split_part(lower(trim({{ expr }})), '@', 1), '\+.*$', '')
     end) || '@' || split_part(lower(trim({{ expr }})), '@', 2)
end
{%- endmacro %}

{% macro normalize_phone(expr) -%}
{#- Digits only, international prefix (00 / +) and country code dropped: the last ten digits
    identify a line within its country in every source we have. Too short: null. -#}
case when length(regexp_replace(coalesce({{ expr }}, ''), '[^0-9]', '', 'g')) >= 10
     then right(regexp_replace({{ expr }}, '[^0-9]', '', 'g'), 10) end
{%- endmacro %}

{% macro fold_letters(expr) -%}
{#- Lower case with accents folded; also the letters strip_accents leaves alone (ß, ø, ł, æ). -#}
lower(strip_accents(replace(replace(replace(replace(replace(replace(lower(coalesce({{ expr }}, '')),
    'ß', 'ss'), 'ø', 'o'), 'ł', 'l'), 'æ', 'ae'), 'œ', 'oe'), 'đ', 'd')))
{%- endmacro %}

{% macro normalize_name(expr) -%}
{#- Lower case, accents folded, only letters, spaces and hyphens kept, spaces squeezed. -#}
nullif(trim(regexp_replace(regexp_replace({{ fold_letters(expr) }},
    '[^a-z\s\-]', '', 'g'), '\s+', ' ', 'g')), '')
{%- endmacro %}

{% macro normalize_address(expr) -%}
{#- A street address comparable across systems: folded like a name but keeping house numbers,
    punctuation gone, and street types in one short form ("Main Street" = "Main St",
    "Hauptstraße" = "Hauptstr."). -#}
{%- set street_types = [
    ('street', 'st'), ('avenue', 'ave'), ('road', 'rd'), ('drive', 'dr'), ('lane', 'ln'),
    ('boulevard', 'blvd'), ('court', 'ct'), ('place', 'pl'), ('square', 'sq'),
    ('terrace', 'ter'), ('crescent', 'cres'), ('apartment', 'apt'), ('suite', 'ste')] -%}
{%- set folded = namespace(sql="regexp_replace(regexp_replace(" ~ fold_letters(expr)
    ~ ", '[^a-z0-9]+', ' ', 'g'), 'strasse\\b', 'str', 'g')") -%}
{%- for long, short in street_types -%}
{%- set folded.sql = "regexp_replace(" ~ folded.sql ~ ", '\\b" ~ long ~ "\\b', '" ~ short ~ "', 'g')" -%}
{%- endfor -%}
nullif(trim({{ folded.sql }}), '')
{%- endmacro %}

{% macro normalize_postcode(expr) -%}
{#- Upper case without spaces; a US ZIP+4 keeps its five-digit ZIP. -#}
nullif(case
    when regexp_full_match(trim(coalesce({{ expr }}, '')), '[0-9]{5}-[0-9]{4}')
    then left(trim({{ expr }}), 5)
    else upper(regexp_replace(coalesce({{ expr }}, ''), '\s', '', 'g'))
end, '')
{%- endmacro %}

{% macro parse_timestamp_utc(expr) -%}
{#- A UTC timestamp from ISO 8601 (any offset, or none = UTC) or epoch seconds/milliseconds. -#}
case
    when {{ expr }} is null then null
    when regexp_full_match(trim({{ expr }}), '[0-9]{9,10}(\.[0-9]+)?')
        then to_timestamp(cast(trim({{ expr }}) as double))
    when regexp_full_match(trim({{ expr }}), '[0-9]{12,13}')
        then to_timestamp(cast(trim({{ expr }}) as double) / 1000)
    else try_cast(replace(trim({{ expr }}), 'Z', '+00:00') as timestamptz)
end
{%- endmacro %}

{% macro parse_date(expr, formats=[]) -%}
{#- A date from text: ISO 8601 without `formats`; else the first of the strptime `formats`
    that parses ("%Y%m%d", "%d/%m/%Y"), or `epoch` seconds / `epoch_ms` milliseconds (negative
    before 1970). Anything that does not parse, 31 November included, is null, never an
    error. -#}
{%- if not formats -%}
try_cast(trim({{ expr }}) as date)
{%- elif formats[0] in ('epoch', 'epoch_ms') -%}
{%- set digits, per_day = (11, 86400) if formats[0] == 'epoch' else (14, 86400000) -%}
case when regexp_full_match(trim({{ expr }}), '-?[0-9]{1,{{ digits }}}(\.[0-9]*)?')
     then date '1970-01-01' + cast(floor(cast(trim({{ expr }}) as double) / {{ per_day }}) as integer)
end
{%- else -%}
cast(try_strptime(trim({{ expr }}), [
    {%- for format in formats %}'{{ format }}'{% if not loop.last %}, {% endif %}{% endfor -%}
]) as date)
{%- endif -%}
{%- endmacro %}

{% macro normalize_identifier(expr) -%}
{#- An id as systems write it differently ("123-45-6789", "123 456 789", "ab12cd"): letters
    and digits only, upper case. Nothing left: null. -#}
nullif(upper(regexp_replace(coalesce({{ expr }}, ''), '[^0-9A-Za-z]', '', 'g')), '')
{%- endmacro %}
