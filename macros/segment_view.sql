{#- The materialization of the generated segment__<name> views: one `create or replace view` where dbt's
    own view materialization creates a temporary view, renames the old one aside, renames the new one in and
    drops the old (with the cache and comment statements around them). Each statement is cheap for the
    database but not for dbt, and twenty segments made those steps cost a third of the segments' whole
    build (issue 5's bench). The statement is atomic on DuckDB and Postgres, and Postgres' rule that a
    replaced view keeps its columns always holds: every segment view has the same three. -#}
{% materialization segment_view, default %}
    {%- set target_relation = this.incorporate(type='view') -%}
    {%- set existing = load_cached_relation(this) -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {#- a table of the same name (an older Rekindle, or a hand-made one) cannot be replaced by a view -#}
    {%- if existing is not none and not existing.is_view -%}
        {% do adapter.drop_relation(existing) %}
    {%- endif -%}

    {% call statement('main') -%}
        create or replace view {{ target_relation }} as (
            {{ sql }}
        )
    {%- endcall %}

    {% do persist_docs(target_relation, model) %}
    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}

    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
