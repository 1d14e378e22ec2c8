{#- Whole periods (week or month) from one period start to another, both first days of their periods
    (report_period_start), as an integer on every engine (Postgres' month difference is a double). -#}
{% macro report_periods_between(start_sql, end_sql, grain) %}
    {%- if grain == 'week' -%}
        cast({{ dbt.datediff(start_sql, end_sql, 'day') }} / 7 as {{ dbt.type_int() }})
    {%- else -%}
        cast({{ dbt.datediff(start_sql, end_sql, grain) }} as {{ dbt.type_int() }})
    {%- endif -%}
{% endmacro %}
