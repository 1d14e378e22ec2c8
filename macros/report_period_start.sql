{#- The first day (a date) of the calendar period (day, week from Monday, month, ...) holding a date or
    timestamp. Truncating a timestamp, not a date: Postgres' date_trunc of a date is a timestamp with time
    zone, which would shift with the session's time zone. -#}
{% macro report_period_start(date_sql, grain) %}
    cast({{ dbt.date_trunc(grain, 'cast(' ~ date_sql ~ ' as timestamp)') }} as date)
{% endmacro %}
