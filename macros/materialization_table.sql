{#- Rekindle's table materialization on DuckDB: one atomic `create or replace table ... as`
    (macros/create_or_replace.sql) where dbt-duckdb's creates the table under a temporary name, renames the
    old one aside, renames the new one in and drops the old, with foreign-key lookups around them: steps that
    buy nothing here (no model has keys, indexes or an enforced contract) and cost dbt a tenth of a second or
    more a model, and dropping the old copy of a large table most of a second (DECISIONS.md, "Rekindle's own
    DuckDB materializations"). Other engines keep dbt's own. -#}
{% materialization table, adapter='duckdb' %}
    {%- if model.language != 'sql' or config.get('contract').enforced -%}
        {{ exceptions.raise_compiler_error(
            model.name ~ ": Rekindle's DuckDB table materialization (macros/materialization_table.sql) builds SQL"
            ~ " models without enforced contracts"
        ) }}
    {%- endif -%}
    {{ return(create_or_replace('table')) }}
{% endmaterialization %}
