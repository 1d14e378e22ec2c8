{#- Aggregate: the value of `value` on the row with the greatest `order_by` among the group's rows where
    `value` is not null (null when there is none). One pass of a GROUP BY, where a row_number() window
    would sort every row of the group first. -#}
{% macro value_at_latest(value, order_by) %}
    {{ return(adapter.dispatch('value_at_latest', 'rekindle')(value, order_by)) }}
{% endmacro %}

{% macro default__value_at_latest(value, order_by) %}
    (array_agg({{ value }} order by {{ order_by }} desc) filter (where {{ value }} is not null))[1]
{% endmacro %}

{% macro duckdb__value_at_latest(value, order_by) %}
    arg_max({{ value }}, {{ order_by }}) filter (where {{ value }} is not null)
{% endmacro %}
