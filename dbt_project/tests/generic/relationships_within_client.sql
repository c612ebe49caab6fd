{#- `relationships` inside one client: fails on every row whose value is not a `field` value of
    the same client (client_id) in `to`, so a key can never point at another client's row even
    where two clients' ids coincide. Nulls pass. -#}
{% test relationships_within_client(model, column_name, to, field) %}

select child.client_id, child.{{ column_name }}
from {{ model }} as child
where child.{{ column_name }} is not null
  and not exists (
    select 1 from {{ to }} as parent
    where parent.client_id = child.client_id
      and parent.{{ field }} = child.{{ column_name }}
  )

{% endtest %}
