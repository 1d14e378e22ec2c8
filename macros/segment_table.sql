{#- The materialization of int_segments__flags, the one table every segment view reads. On DuckDB it is one
    `create or replace table ... as` where dbt-duckdb's table materialization also looks up foreign keys,
    creates the table under a temporary name, renames the old one aside, renames the new one in and drops the
    old: steps that buy nothing here (the table has no keys, indexes or grants) and cost dbt a few tenths of
    a second (issue 5's bench). The statement is atomic. Other engines get dbt's own table materialization,
    as segment_view does. -#}
{% materialization segment_table, adapter='duckdb' %}
    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set existing = load_cached_relation(this) -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {#- a view of the same name (an older Rekindle, or a hand-made one) cannot be replaced by a table -#}
    {%- if existing is not none and not existing.is_table -%}
        {% do adapter.drop_relation(existing) %}
    {%- endif -%}

    {% call statement('main') -%}
        create or replace table {{ target_relation }} as (
            {{ sql }}
        )
    {%- endcall %}

    {% do persist_docs(target_relation, model) %}
    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}

    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}

{% materialization segment_table, default %}
    {{ return(materialization_table_default()) }}
{% endmaterialization %}
