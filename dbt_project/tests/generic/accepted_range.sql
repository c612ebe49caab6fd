{#- Fails on every row whose value lies outside [min_value, max_value] (either bound optional;
    `inclusive: false` excludes the bounds). Nulls pass: pair it with not_null if needed. -#}
{% test accepted_range(model, column_name, min_value=none, max_value=none, inclusive=true) %}
{%- set low = '>=' if inclusive else '>' -%}
{%- set high = '<=' if inclusive else '<' -%}

select *
from {{ model }}
where {{ column_name }} is not null
  and not (
    {%- if min_value is not none %} {{ column_name }} {{ low }} {{ min_value }}{% endif %}
    {%- if min_value is not none and max_value is not none %} and{% endif %}
    {%- if max_value is not none %} {{ column_name }} {{ high }} {{ max_value }}{% endif %}
    {%- if min_value is none and max_value is none %} true{% endif %}
  )

{% endtest %}
