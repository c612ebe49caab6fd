{#- Fails when any of `columns` holds a null: one row per such column, with how many rows it is
    null in (the test's failure count is the sum, as `not_null`'s would be). One node and one
    scan per model instead of one `not_null` node per column: a build pays for every node, in
    dbt and in the events Dagster writes for each check (the per-column not_null tests were 202
    nodes of 323, and half the events of a build). -#}
{% test not_null_columns(model, columns) %}
{{ config(fail_calc='coalesce(sum(null_rows), 0)') }}

with null_counts as (

    select
        {%- for column in columns %}
        count(*) filter (where {{ column }} is null) as {{ column }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ model }}

)

select null_column, null_rows
from (unpivot null_counts on columns(*) into name null_column value null_rows)
where null_rows > 0

{% endtest %}
