{#- Money: minor units to decimals by the currency's exponent (seed `currencies`), and dated
    conversion into the reporting currency (seed `fx_rates`, var `reporting_currency`).
    The lookups are correlated subqueries on the seeds, whose columns are called `currency`
    and `date` too: qualify the arguments with their CTE (`typed.currency`), or they would
    name the seed's own column. -#}

{% macro reporting_currency() -%}
{%- set code = var('reporting_currency', 'USD') | string | upper -%}
{%- if not modules.re.fullmatch('[A-Z]{3}', code) -%}
    {{ exceptions.raise_compiler_error("var reporting_currency must be an ISO 4217 code such as USD, got " ~ code) }}
{%- endif -%}
{{ return(code) }}
{%- endmacro %}

{% macro currency_exponent(currency) -%}
{#- Digits after the decimal point in the currency (2 for USD, 0 for JPY); null if unknown. -#}
(select currencies.minor_unit_exponent from {{ ref('currencies') }} as currencies
 where currencies.currency = {{ currency }})
{%- endmacro %}

{#- Exact decimal arithmetic both ways (no float rounding): totals must match the vendor's. -#}
{% macro minor_to_major(amount_minor, exponent) -%}
cast(cast({{ amount_minor }} as decimal(38, 4)) * cast(power(10, -{{ exponent }}) as decimal(38, 4))
     as decimal(18, 4))
{%- endmacro %}

{% macro major_to_minor(amount, exponent) -%}
{#- Rounds a fraction of a minor unit; rule `amount_finer_than_currency` catches those. -#}
cast({{ amount }} * cast(power(10, {{ exponent }}) as bigint) as bigint)
{%- endmacro %}

{% macro fx_rate_to_usd(currency, on_date) -%}
{#- The rate in force on the date: the latest one on or before it, if no older than
    var fx_rate_max_age_days (so monthly rates work, and a seed that stops is noticed). -#}
(select arg_max(fx.rate_to_usd, fx.date) from {{ ref('fx_rates') }} as fx
 where fx.currency = {{ currency }}
   and fx.date <= {{ on_date }}
   and fx.date > {{ on_date }} - {{ var('fx_rate_max_age_days', 31) }})
{%- endmacro %}

{% macro fx_rate_to_reporting(currency, on_date) -%}
{#- Units of the reporting currency per unit of `currency` on the date; null when either
    rate is missing. -#}
({{ fx_rate_to_usd(currency, on_date) }}
    / {{ fx_rate_to_usd("'" ~ reporting_currency() ~ "'", on_date) }})
{%- endmacro %}

{% macro to_reporting_amount(amount, fx_rate) -%}
{#- Converted and rounded to the reporting currency's own minor unit. -#}
{%- set exponent = currency_exponent("'" ~ reporting_currency() ~ "'") -%}
cast(round({{ amount }} * {{ fx_rate }} * power(10, {{ exponent }})) / power(10, {{ exponent }})
     as decimal(18, 4))
{%- endmacro %}
