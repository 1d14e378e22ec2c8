{#- numerator / denominator rounded to 6 decimals as a double on every engine (null when the denominator is 0).
    Divided as numerics first, so both engines round the same quotient; returned as double precision so the
    column has one type everywhere (Postgres would keep numeric, DuckDB turns a decimal quotient into a double). -#}
{% macro report_ratio(numerator_sql, denominator_sql) %}
    cast(round(cast({{ numerator_sql }} as {{ dbt.type_numeric() }}) / nullif({{ denominator_sql }}, 0), 6) as double precision)
{% endmacro %}
