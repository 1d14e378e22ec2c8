{#- The materialization of int_segments__flags, the one table every segment view reads. On DuckDB it is one
    `create or replace table ... as` where dbt-duckdb's table materialization also looks up foreign keys,
    creates the table under a temporary name, renames the old one aside, renames the new one in and drops the
    old: steps that buy nothing here (the table has no keys, indexes or grants) and cost dbt a few tenths of
    a second (issue 5's bench). The statement is atomic. Other engines get dbt's own table materialization,
    as segment_view does. -#}
{% materialization segment_table, adapter='duckdb' %}
    {{ return(segment_replace('table')) }}
{% endmaterialization %}

{% materialization segment_table, default %}
    {{ return(materialization_table_default()) }}
{% endmaterialization %}
