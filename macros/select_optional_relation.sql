{#- A select of the given columns from a relation that may not exist yet, such as a table a Python task
    writes beside the marts (the CLV task's clv_predictions): the relation's rows when adapter.get_relation
    finds it, else no rows, with the same column names and types either way (every column is cast to its
    declared type), so the model builds on a fresh warehouse and its columns do not depend on the task.

    The lookup happens only at execution time ({% if execute %}): at parse time dbt renders models without
    querying the warehouse, and what matters then is that the caller's source() or ref() call is rendered,
    which records the dependency for lineage and docs; the SQL rendered at parse time is never run.

    relation: a Relation (source('...', '...') or ref('...')); columns: a mapping of column name to SQL type,
    in the order wanted. In a unit test the relation is the test's fixture, always there. Use it as a CTE body:  clv as ( {{ select_optional_relation(source(...), {...}) }} ) -#}
{% macro select_optional_relation(relation, columns) %}
    {%- set found = none -%}
    {%- if execute and model.resource_type == 'unit_test' -%}
        {#- a unit test's relation is the test's fixture, which always exists -#}
        {%- set found = true -%}
    {%- elif execute -%}
        {%- set found = adapter.get_relation(
            database=relation.database, schema=relation.schema, identifier=relation.identifier
        ) -%}
    {%- endif %}
    select
    {%- for name, type in columns.items() %}
        cast({{ name if found else 'null' }} as {{ type }}) as {{ name }}{{ ',' if not loop.last }}
    {%- endfor %}
    {% if found -%}
    from {{ relation }}
    {%- else -%}
    where false
    {%- endif %}
{% endmacro %}
