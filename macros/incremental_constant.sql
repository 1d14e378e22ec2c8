{#- A scalar SQL expression of an incremental run (a watermark, read from `this`), evaluated once when the
    model runs and written into its SQL as a constant: `cast('<value>' as <type>)`. A filter on a constant
    lets DuckDB skip the row groups whose min/max (zone maps) rule it out, and the tables an incremental
    run filters by load time are appended in load order, so `loaded_at > <constant>` reads only the last
    row groups; against the same value from a subquery or a joined CTE it reads every row. At parse time
    (no warehouse) and in unit tests (`this` is a fixture, not a relation) the expression is returned as it
    is, which means the same. The value goes through text (timestamps keep their microseconds on DuckDB
    and Postgres alike); the expression must not be null. -#}
{% macro incremental_constant(expression, type='timestamp') %}
    {{ return(incremental_constants({'value': [expression, type]}).value) }}
{% endmacro %}

{#- Several such constants in one query: `named` maps each name to [expression, type]; returns the same
    names mapped to their constants (or to the expressions, at parse time and in unit tests). -#}
{% macro incremental_constants(named) %}
    {%- if not execute or model.resource_type == 'unit_test' -%}
        {%- set expressions = {} -%}
        {%- for name, expression_and_type in named.items() -%}
            {%- do expressions.update({name: expression_and_type[0]}) -%}
        {%- endfor -%}
        {{ return(expressions) }}
    {%- endif -%}
    {%- set names = named.keys() | list -%}
    {%- set selects = [] -%}
    {%- for name in names -%}
        {%- do selects.append(dbt.cast(named[name][0], dbt.type_string()) ~ ' as ' ~ name) -%}
    {%- endfor -%}
    {%- set row = run_query('select ' ~ selects | join(', ')).rows[0] -%}
    {%- set constants = {} -%}
    {%- for name in names -%}
        {%- if row[loop.index0] is none -%}
            {{ exceptions.raise_compiler_error('incremental_constant: null from ' ~ named[name][0]) }}
        {%- endif -%}
        {%- do constants.update({name: "cast('" ~ row[loop.index0] ~ "' as " ~ named[name][1] ~ ")"}) -%}
    {%- endfor -%}
    {{ return(constants) }}
{% endmacro %}
