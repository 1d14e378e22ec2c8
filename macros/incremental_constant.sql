{#- A scalar SQL expression of an incremental run (a watermark, read from `this`), evaluated once when the
    model runs and written into its SQL as a constant: `cast('<value>' as <type>)`. A filter on a constant
    lets DuckDB skip the row groups whose min/max (zone maps) rule it out, and the tables an incremental
    run filters by load time are appended in load order, so `loaded_at > <constant>` reads only the last
    row groups; against the same value from a subquery or a joined CTE it reads every row. At parse time
    (no warehouse) and in unit tests (`this` is a fixture, not a relation) the expression is returned as it
    is, which means the same. The value goes through text (timestamps keep their microseconds on DuckDB
    and Postgres alike); the expression must not be null. -#}
{% macro incremental_constant(expression, type='timestamp') %}
    {%- if not execute or model.resource_type == 'unit_test' -%}
        {{ return(expression) }}
    {%- endif -%}
    {%- set value = run_query('select ' ~ dbt.cast(expression, dbt.type_string())).columns[0].values()[0] -%}
    {%- if value is none -%}
        {{ exceptions.raise_compiler_error('incremental_constant: null from ' ~ expression) }}
    {%- endif -%}
    {{ return("cast('" ~ value ~ "' as " ~ type ~ ")") }}
{% endmacro %}
