{#- One row per period (column `period_start`, a date) from start to end inclusive, both SQL expressions of
    dates or timestamps. generate_series with a timestamp range and an interval step reads the same on DuckDB
    and Postgres; unlike dbt's date_spine it needs no query at compile time. -#}
{% macro report_spine(start_sql, end_sql, datepart='day') %}
    select cast(spine.period_start as date) as period_start
    from generate_series(
        cast({{ start_sql }} as timestamp),
        cast({{ end_sql }} as timestamp),
        interval '1 {{ datepart }}'
    ) as spine (period_start)
{% endmacro %}
