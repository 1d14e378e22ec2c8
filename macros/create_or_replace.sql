{#- The body of Rekindle's DuckDB materializations (macros/materialization_*.sql): the model replaced by one
    atomic `create or replace <type>` (with its pre- and post-hooks and its persisted docs). A relation of
    the other type under the same name (an older Rekindle, or a hand-made one) is dropped first: DuckDB
    cannot replace a table by a view or a view by a table. -#}
{% macro create_or_replace(relation_type) %}
    {%- set target_relation = this.incorporate(type=relation_type) -%}
    {%- set existing = load_cached_relation(this) -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {%- if existing is not none and existing.type != relation_type -%}
        {% do adapter.drop_relation(existing) %}
    {%- endif -%}

    {% call statement('main') -%}
        create or replace {{ relation_type }} {{ target_relation }} as (
            {{ sql }}
        )
    {%- endcall %}

    {% do persist_docs(target_relation, model) %}
    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}

    {{ return({'relations': [target_relation]}) }}
{% endmacro %}
