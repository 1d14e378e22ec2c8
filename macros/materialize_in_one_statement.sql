{#- What every Rekindle DuckDB materialization does around its one statement (macros/materialization_*.sql):
    the pre-hooks, the statement, the persisted docs, the post-hooks inside the transaction, the commit, the
    post-hooks after it. Returns the materialization's result. -#}
{% macro materialize_in_one_statement(relation, main_sql) %}
    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {% call statement('main') -%}
        {{ main_sql }}
    {%- endcall %}

    {% do persist_docs(relation, model) %}
    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}

    {{ return({'relations': [relation]}) }}
{% endmacro %}
