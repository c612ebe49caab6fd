{#- Fails on every row whose key is in a quarantine model: quarantined records never reach a
    mart. `quarantine_column` defaults to the tested column's name. -#}
{% test excludes_quarantined(model, column_name, quarantine_model, quarantine_column=none) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} in (
    select {{ quarantine_column or column_name }} from {{ quarantine_model }}
)

{% endtest %}
