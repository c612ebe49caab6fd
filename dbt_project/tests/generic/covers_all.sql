{#- The reverse of `relationships`: fails on every value of `to`.`field` that has no row in the
    tested model (with `unique` and `relationships`, the model has one row per value). -#}
{% test covers_all(model, column_name, to, field) %}

select {{ field }} as missing_value
from {{ to }}
where {{ field }} is not null
  and {{ field }} not in (
    select {{ column_name }} from {{ model }} where {{ column_name }} is not null
  )

{% endtest %}
