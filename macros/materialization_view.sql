{#- Rekindle's view materialization on DuckDB: one atomic `create or replace view` (macros/create_or_replace.sql)
    where dbt-duckdb's creates a temporary view, renames the old one aside, renames the new one in and drops the
    old, with the cache and comment statements around them. Each statement is cheap for the database but not
    for dbt: twenty segment views made those steps a third of the segments' build (issue 5's bench). DuckDB's
    views read their relations by name, so the views over these need no rebuild. Other engines keep dbt's own:
    Postgres' `create or replace view` refuses to drop or retype a column, which the segment facts view does
    whenever a segment's rules change. -#}
{% materialization view, adapter='duckdb' %}
    {%- if config.get('contract').enforced -%}
        {{ exceptions.raise_compiler_error(
            model.name ~ ": Rekindle's DuckDB view materialization (macros/materialization_view.sql) builds views"
            ~ " without enforced contracts"
        ) }}
    {%- endif -%}
    {{ return(create_or_replace('view')) }}
{% endmaterialization %}
