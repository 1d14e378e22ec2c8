{#- The most recent non-null value of `column` within a partition, as a window expression.
    Nulls sort last, so a later update that omits a field never erases an earlier value, while a
    later explicit value (false for an opt-out included) always wins over an older one. -#}
{% macro latest_non_null(column, partition_by, order_by) %}
    first_value({{ column }}) over (
        partition by {{ partition_by }}
        order by case when {{ column }} is null then 1 else 0 end, {{ order_by }}
        rows between unbounded preceding and unbounded following
    )
{% endmacro %}
