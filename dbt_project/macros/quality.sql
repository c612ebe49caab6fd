{% macro failed_rules(rules) -%}
{#- The names of the validation rules a row breaks, in the order given (most basic first).
    `rules` is a list of (name, SQL condition true when the row breaks the rule). Staging
    models expose the list as `failed_rules` and its first item as `failed_rule`: rows with
    a failed rule go to the quarantine models and never reach a mart. -#}
list_filter([
    {%- for name, condition in rules %}
        case when {{ condition }} then '{{ name }}' end{{ ',' if not loop.last }}
    {%- endfor %}
    ], lambda rule: rule is not null)
{%- endmacro %}
