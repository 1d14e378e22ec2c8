{#- An ORDER BY for the full build of a large incremental table, on DuckDB: DuckDB keeps the rows in that order
    and stores each row group's min and max (zone maps), so a filter or join bound on the column reads only
    the row groups that can match. Incremental runs append in load order, which keeps new rows together
    anyway; it is the full build whose joins and windows scatter every day over every row group. Nothing on
    other adapters, where the physical order does not steer a scan. -#}
{% macro zone_map_order(columns) %}
    {{ return(adapter.dispatch('zone_map_order', 'rekindle')(columns)) }}
{% endmacro %}

{% macro default__zone_map_order(columns) %}
{% endmacro %}

{% macro duckdb__zone_map_order(columns) %}
    order by {{ columns }}
{% endmacro %}
