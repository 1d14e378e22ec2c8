{#- The model replaced by one atomic `create or replace <type>` (macros/materialize_in_one_statement.sql): the
    table and view materializations on DuckDB, and an incremental model's first build or full refresh. A
    relation of the other type under the same name (an older Rekindle, or a hand-made one) is dropped first:
    DuckDB cannot replace a table by a view or a view by a table. -#}
{% macro create_or_replace(relation_type) %}
    {%- set target_relation = this.incorporate(type=relation_type) -%}
    {%- set existing = load_cached_relation(this) -%}
    {%- if existing is not none and existing.type != relation_type -%}
        {% do adapter.drop_relation(existing) %}
    {%- endif -%}
    {%- set main_sql -%}
        create or replace {{ relation_type }} {{ target_relation }} as (
            {{ sql }}
        )
    {%- endset -%}
    {{ return(materialize_in_one_statement(target_relation, main_sql)) }}
{% endmacro %}
