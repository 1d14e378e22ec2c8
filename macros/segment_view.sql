{#- The materialization of the generated segment views (segment__<name> and int_segments__event_facts). On
    DuckDB it is one `create or replace view` where dbt's own view materialization creates a temporary view,
    renames the old one aside, renames the new one in and drops the old (with the cache and comment
    statements around them). Each statement is cheap for the database but not for dbt, and twenty segments
    made those steps cost a third of the segments' whole build (issue 5's bench). The statement is atomic,
    and DuckDB's views read their relations by name, so the views over these need no rebuild. Other engines
    get dbt's own view materialization: Postgres' `create or replace view` refuses to drop or retype a
    column, which the facts view does whenever a segment's rules change. -#}
{% materialization segment_view, adapter='duckdb' %}
    {{ return(segment_replace('view')) }}
{% endmaterialization %}

{% materialization segment_view, default %}
    {{ return(materialization_view_default()) }}
{% endmaterialization %}
